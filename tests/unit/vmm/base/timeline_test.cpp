#include "vmm/base/timeline.hpp"

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

namespace kvmlet {
namespace {

TEST_CASE("A timeline starts at process start, time zero") {
    Timeline timeline;
    auto start = timeline.reached(Phase::process_start);
    REQUIRE(start);
    CHECK(start->wall_us == 0);
    CHECK_FALSE(timeline.reached(Phase::args_parsed));
}

TEST_CASE("A phase keeps the time it was first reached") {
    Timeline timeline;
    timeline.mark(Phase::vm_created, {100, 50});
    timeline.mark(Phase::vm_created, {200, 80});
    auto at = timeline.reached(Phase::vm_created);
    REQUIRE(at);
    CHECK(at->wall_us == 100);
    CHECK(at->cpu_us == 50);
}

TEST_CASE("Exits count toward the latest phase reached, and add up to the totals") {
    Timeline timeline;
    timeline.count_exit(ExitReason::pio);
    timeline.mark(Phase::first_kvm_run, {10, 10});
    timeline.count_exit(ExitReason::pio);
    timeline.count_exit(ExitReason::mmio);
    timeline.mark(Phase::boot_timer, {20, 20});
    timeline.mark(Phase::first_console_byte, {30, 30});  // earlier in the order: the phase stays boot_timer
    timeline.count_exit(ExitReason::hlt);
    CHECK(timeline.exits(Phase::process_start, ExitReason::pio) == 1);
    CHECK(timeline.exits(Phase::first_kvm_run, ExitReason::pio) == 1);
    CHECK(timeline.exits(Phase::first_kvm_run, ExitReason::mmio) == 1);
    CHECK(timeline.exits(Phase::boot_timer, ExitReason::hlt) == 1);
    CHECK(timeline.exits(Phase::first_console_byte, ExitReason::hlt) == 0);
    CHECK(timeline.total_exits(ExitReason::pio) == 2);
}

TEST_CASE("Marks and exit counts from many threads lose nothing") {
    Timeline timeline;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            timeline.mark(Phase::first_kvm_run, {static_cast<std::uint64_t>(t), 0});
            for (int i = 0; i < 10000; ++i) timeline.count_exit(ExitReason::pio);
        });
    for (auto& t : threads) t.join();
    CHECK(timeline.total_exits(ExitReason::pio) == 40000);
    REQUIRE(timeline.reached(Phase::first_kvm_run));
    CHECK(timeline.reached(Phase::first_kvm_run)->wall_us < 4);
}

TEST_CASE("Every phase and exit reason has a distinct name") {
    std::vector<std::string_view> names;
    for (std::size_t p = 0; p < phase_count; ++p) names.push_back(name(static_cast<Phase>(p)));
    for (std::size_t r = 0; r < exit_reason_count; ++r) names.push_back(name(static_cast<ExitReason>(r)));
    for (std::size_t i = 0; i < names.size(); ++i) {
        CHECK(names[i] != "?");
        for (std::size_t j = i + 1; j < names.size(); ++j) CHECK(names[i] != names[j]);
    }
}

TEST_CASE("The process clock starts at the exec, before main") {
    auto now = since_process_start();
    CHECK(now.wall_us > 0);
    CHECK(now.wall_us < 3'600'000'000ull);  // less than an hour: not measured from boot
    CHECK(process_start_resolution_us() >= 1);
}

}  // namespace
}  // namespace kvmlet
