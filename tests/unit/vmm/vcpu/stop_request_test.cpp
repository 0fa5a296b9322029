#include "vmm/vcpu/stop_request.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace kvmlet {

TEST_CASE("a stop request starts out unrequested") {
    int notified = 0;
    StopRequest stop([&] { ++notified; });
    CHECK_FALSE(stop.requested());
    CHECK_FALSE(stop.reason());
    CHECK(notified == 0);
}

TEST_CASE("the first stop request wins and the owner is notified once") {
    int notified = 0;
    StopRequest stop([&] { ++notified; });
    CHECK(stop.request(StopKind::power_off, "ACPI shutdown"));
    CHECK(stop.requested());
    CHECK(notified == 1);

    CHECK_FALSE(stop.request(StopKind::crashed, "triple fault"));
    CHECK_FALSE(stop.request(StopKind::quit));
    CHECK(notified == 1);

    auto reason = stop.reason();
    REQUIRE(reason);
    CHECK(reason->kind == StopKind::power_off);
    CHECK(reason->message == "ACPI shutdown");
}

TEST_CASE("a stop request without a message keeps an empty message") {
    StopRequest stop(std::function<void()>{});  // nobody to notify
    CHECK(stop.request(StopKind::signal));
    auto reason = stop.reason();
    REQUIRE(reason);
    CHECK(reason->kind == StopKind::signal);
    CHECK(reason->message.empty());
}

TEST_CASE("of many threads requesting a stop at once exactly one wins") {
    std::atomic<int> notified{0};
    StopRequest stop([&] { ++notified; });
    std::atomic<int> winners{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&, i] {
            if (stop.request(i % 2 ? StopKind::reset : StopKind::crashed, std::to_string(i))) ++winners;
        });
    for (auto& t : threads) t.join();
    CHECK(winners == 1);
    CHECK(notified == 1);
    auto reason = stop.reason();
    REQUIRE(reason);
    int index = std::stoi(reason->message);
    CHECK(reason->kind == (index % 2 ? StopKind::reset : StopKind::crashed));
}

TEST_CASE("only a crash makes kvmlet exit with a failure status") {
    CHECK(exit_status(StopKind::crashed) == ExitStatus::guest_crash);
    CHECK(static_cast<int>(exit_status(StopKind::crashed)) == 3);
    for (auto kind :
         {StopKind::power_off, StopKind::reset, StopKind::halted, StopKind::quit, StopKind::signal}) {
        CAPTURE(static_cast<int>(kind));
        CHECK(exit_status(kind) == ExitStatus::ok);
        CHECK(static_cast<int>(exit_status(kind)) == 0);
    }
}

TEST_CASE("every stop kind has its own description") {
    std::vector<std::string> seen;
    for (auto kind : {StopKind::power_off, StopKind::reset, StopKind::halted, StopKind::crashed,
                      StopKind::quit, StopKind::signal}) {
        std::string d = describe(kind);
        CHECK_FALSE(d.empty());
        for (auto const& other : seen) CHECK(d != other);
        seen.push_back(d);
    }
    CHECK(std::string(describe(StopKind::quit)).find("Ctrl-A x") != std::string::npos);
}

}  // namespace kvmlet
