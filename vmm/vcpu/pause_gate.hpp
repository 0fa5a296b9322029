#pragma once
// Where vCPU threads park while their machine is paused (Firecracker's PATCH /vm "Paused").
//
// A vCPU thread calls park_if_requested() at the top of its loop, before each KVM_RUN: out of
// KVM_RUN and not in the middle of serving an exit. The machine's pause() is request() (the
// vCPUs then park at their next check), a kick that makes a vCPU in KVM_RUN return, and
// wait_until_parked(); resume() is release(). close() (the machine is stopping) lets every parked
// vCPU go and every waiter return, for good. All members may be called from any thread.
//
// A vCPU that parks without having re-entered KVM_RUN since a port or MMIO exit leaves that
// exit's completion (the data of an IN, say) pending in the kernel until it runs again: harmless
// for a pause; a snapshot would first have to run it once with immediate_exit set.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace kvmlet {

class PauseGate {
public:
    PauseGate() = default;
    PauseGate(PauseGate const&) = delete;
    PauseGate& operator=(PauseGate const&) = delete;

    // Asks the vCPUs to park; returns whether the gate was open (false: already paused).
    bool request() noexcept;
    // Lets parked vCPUs go on; returns whether the gate was closed for a pause.
    bool release() noexcept;
    // Waits until every vCPU thread inside its loop is parked, the gate was closed, or `timeout`
    // passed (then false: the caller kicks again and waits again).
    bool wait_until_parked(std::chrono::milliseconds timeout) noexcept;
    // For good: parked vCPUs return from park_if_requested() and no vCPU parks again.
    void close() noexcept;

    bool requested() const noexcept { return requested_.load(std::memory_order_acquire); }
    bool closed() const noexcept;

    // The vCPU side. A vCPU thread is counted between enter() and leave(); park_if_requested()
    // returns at once unless a pause is requested, else once it is released or the gate closed.
    void enter() noexcept;
    void leave() noexcept;
    void park_if_requested() noexcept;

    // vCPU threads inside their loop, and how many of them are parked (for tests and dumps).
    std::uint32_t members() const noexcept;
    std::uint32_t parked() const noexcept;

private:
    bool all_parked() const noexcept { return closed_ || parked_ == members_; }

    std::atomic<bool> requested_{false};  // read without the lock on every vCPU loop
    mutable std::mutex mutex_;            // guards everything below, and writes of requested_
    std::condition_variable vcpus_;       // parked vCPUs wait here for release() or close()
    std::condition_variable waiters_;     // wait_until_parked() waits here
    std::uint32_t members_ = 0;
    std::uint32_t parked_ = 0;
    bool closed_ = false;
};

// enter() and leave() around a vCPU thread's loop.
class PauseGateMember {
public:
    explicit PauseGateMember(PauseGate& gate) noexcept : gate_(gate) { gate_.enter(); }
    ~PauseGateMember() { gate_.leave(); }
    PauseGateMember(PauseGateMember const&) = delete;
    PauseGateMember& operator=(PauseGateMember const&) = delete;

private:
    PauseGate& gate_;
};

}  // namespace kvmlet
