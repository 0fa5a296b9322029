#include "vmm/machine/timeline_report.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace kvmlet {
namespace {

TEST_CASE("The timeline JSON lists reached phases in order with their exits, and the stop") {
    Timeline timeline;
    timeline.mark(Phase::args_parsed, {1000, 900});
    timeline.mark(Phase::first_kvm_run, {5000, 2000});
    timeline.count_exit(ExitReason::pio);
    timeline.count_exit(ExitReason::pio);
    timeline.mark(Phase::boot_timer, {7000, 2500});
    timeline.count_exit(ExitReason::mmio);
    auto doc = nlohmann::json::parse(timeline_json(timeline, StopReason{StopKind::reset, "why\nmore"}));
    CHECK(doc["schema"] == "kvmlet-timeline/1");
    auto const& phases = doc["phases"];
    REQUIRE(phases.size() == 4);
    CHECK(phases[0]["name"] == "process_start");
    CHECK(phases[1]["name"] == "args_parsed");
    CHECK(phases[1]["wall_us"] == 1000);
    CHECK(phases[1]["cpu_us"] == 900);
    CHECK(phases[2]["name"] == "first_kvm_run");
    CHECK(phases[3]["name"] == "boot_timer");
    CHECK(doc["exits"]["first_kvm_run"]["pio"] == 2);
    CHECK(doc["exits"]["boot_timer"]["mmio"] == 1);
    CHECK(doc["exits"]["total"]["pio"] == 2);
    CHECK(doc["exits"]["total"]["mmio"] == 1);
    CHECK_FALSE(doc["exits"].contains("vm_created"));
    CHECK(doc["stop"]["kind"] == "reset");
    CHECK(doc["stop"]["detail"] == "why");
}

TEST_CASE("The timeline summary names each reached phase in milliseconds") {
    Timeline timeline;
    timeline.mark(Phase::first_kvm_run, {2500, 0});
    timeline.count_exit(ExitReason::hlt);
    auto line = timeline_summary(timeline);
    CHECK(line.find("first_kvm_run 2.5 ms") != std::string::npos);
    CHECK(line.find("1 exits") != std::string::npos);
}

}  // namespace
}  // namespace kvmlet
