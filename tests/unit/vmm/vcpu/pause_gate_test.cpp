#include "vmm/vcpu/pause_gate.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

namespace kvmlet {
namespace {

using namespace std::chrono_literals;

// Threads that loop as vCPUs do: look at the gate, then "run" (count) until told to stop.
struct FakeVcpus {
    explicit FakeVcpus(PauseGate& gate, int count) : gate_(gate), counters(static_cast<std::size_t>(count)) {
        for (auto& counter : counters)
            threads.emplace_back([this, c = &counter] {
                PauseGateMember member(gate_);
                while (!stop.load()) {
                    gate_.park_if_requested();
                    c->fetch_add(1);
                }
            });
    }
    ~FakeVcpus() {
        stop.store(true);
        gate_.close();
        for (auto& thread : threads) thread.join();
    }
    std::vector<std::uint64_t> snapshot() const {
        std::vector<std::uint64_t> values;
        for (auto const& counter : counters) values.push_back(counter.load());
        return values;
    }
    void wait_until_members(std::uint32_t n) const {
        for (int i = 0; i < 5000 && gate_.members() != n; ++i) std::this_thread::sleep_for(1ms);
    }

    PauseGate& gate_;
    std::atomic<bool> stop{false};
    std::vector<std::atomic<std::uint64_t>> counters;
    std::vector<std::thread> threads;
};

bool pause(PauseGate& gate) {
    gate.request();
    return gate.wait_until_parked(10s);
}

}  // namespace

TEST_CASE("a fresh pause gate lets vCPUs through and has nobody to wait for") {
    PauseGate gate;
    CHECK_FALSE(gate.requested());
    gate.park_if_requested();  // returns at once
    CHECK(gate.wait_until_parked(0ms));
    CHECK(gate.members() == 0);
}

TEST_CASE("pause and resume are idempotent and say whether they changed anything") {
    PauseGate gate;
    CHECK(gate.request());
    CHECK_FALSE(gate.request());
    CHECK(gate.requested());
    CHECK(gate.release());
    CHECK_FALSE(gate.release());
    CHECK_FALSE(gate.requested());
}

TEST_CASE("a paused gate holds every looping thread still until it is released") {
    PauseGate gate;
    FakeVcpus vcpus(gate, 3);
    vcpus.wait_until_members(3);
    for (int round = 0; round < 20; ++round) {
        REQUIRE(pause(gate));
        CHECK(gate.parked() == 3);
        auto const held = vcpus.snapshot();
        std::this_thread::sleep_for(2ms);
        CHECK(vcpus.snapshot() == held);
        gate.release();
        // Every thread runs again: each counter moves.
        for (int i = 0; i < 5000; ++i) {
            auto now = vcpus.snapshot();
            bool all_moved = true;
            for (std::size_t v = 0; v < now.size(); ++v) all_moved = all_moved && now[v] > held[v];
            if (all_moved) break;
            std::this_thread::sleep_for(100us);
        }
        auto const after = vcpus.snapshot();
        for (std::size_t v = 0; v < after.size(); ++v) CHECK(after[v] > held[v]);
    }
}

TEST_CASE("a pause released and requested again before the parked threads woke keeps them parked") {
    PauseGate gate;
    FakeVcpus vcpus(gate, 2);
    vcpus.wait_until_members(2);
    REQUIRE(pause(gate));
    for (int i = 0; i < 100; ++i) {
        gate.release();
        REQUIRE(pause(gate));
    }
    auto const held = vcpus.snapshot();
    std::this_thread::sleep_for(2ms);
    CHECK(vcpus.snapshot() == held);
    gate.release();
}

TEST_CASE("closing the gate frees parked threads for good and ends a wait") {
    PauseGate gate;
    auto vcpus = std::make_unique<FakeVcpus>(gate, 2);
    vcpus->wait_until_members(2);
    REQUIRE(pause(gate));
    vcpus.reset();  // stop, close, join: hangs if close did not free them
    CHECK(gate.closed());
    CHECK_FALSE(gate.request());
    CHECK(gate.wait_until_parked(0ms));
    gate.park_if_requested();  // returns at once
}

TEST_CASE("a thread that leaves its loop instead of parking completes a pause") {
    PauseGate gate;
    gate.enter();
    gate.request();
    CHECK_FALSE(gate.wait_until_parked(1ms));
    std::thread leaver([&] { gate.leave(); });
    CHECK(gate.wait_until_parked(10s));
    leaver.join();
}

}  // namespace kvmlet
