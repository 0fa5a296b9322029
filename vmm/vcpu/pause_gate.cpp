#include "vmm/vcpu/pause_gate.hpp"

namespace kvmlet {

bool PauseGate::request() noexcept {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    return !requested_.exchange(true, std::memory_order_acq_rel);
}

bool PauseGate::release() noexcept {
    bool was_requested = false;
    {
        std::lock_guard lock(mutex_);
        was_requested = requested_.exchange(false, std::memory_order_acq_rel);
    }
    if (was_requested) vcpus_.notify_all();
    return was_requested;
}

bool PauseGate::wait_until_parked(std::chrono::milliseconds timeout) noexcept {
    std::unique_lock lock(mutex_);
    return waiters_.wait_for(lock, timeout, [&] { return all_parked(); });
}

void PauseGate::close() noexcept {
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
        requested_.store(false, std::memory_order_release);
    }
    vcpus_.notify_all();
    waiters_.notify_all();
}

bool PauseGate::closed() const noexcept {
    std::lock_guard lock(mutex_);
    return closed_;
}

void PauseGate::enter() noexcept {
    std::lock_guard lock(mutex_);
    ++members_;
}

void PauseGate::leave() noexcept {
    {
        std::lock_guard lock(mutex_);
        --members_;
    }
    // One fewer to wait for: a pause waiting on a vCPU that stopped instead of parking is done.
    waiters_.notify_all();
}

void PauseGate::park_if_requested() noexcept {
    if (!requested()) return;
    std::unique_lock lock(mutex_);
    if (!requested_.load(std::memory_order_relaxed) || closed_) return;
    ++parked_;
    waiters_.notify_all();
    vcpus_.wait(lock, [&] { return !requested_.load(std::memory_order_relaxed) || closed_; });
    --parked_;
}

std::uint32_t PauseGate::members() const noexcept {
    std::lock_guard lock(mutex_);
    return members_;
}

std::uint32_t PauseGate::parked() const noexcept {
    std::lock_guard lock(mutex_);
    return parked_;
}

}  // namespace kvmlet
