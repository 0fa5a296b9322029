#include "vmm/vcpu/stop_request.hpp"

#include "vmm/base/timeline.hpp"

namespace kvmlet {

ExitStatus exit_status(StopKind kind) noexcept {
    switch (kind) {
        case StopKind::power_off:
        case StopKind::reset:
        case StopKind::halted:
        case StopKind::quit:
        case StopKind::signal:
            return ExitStatus::ok;
        case StopKind::crashed:
            return ExitStatus::guest_crash;
    }
    return ExitStatus::guest_crash;
}

char const* describe(StopKind kind) noexcept {
    switch (kind) {
        case StopKind::power_off:
            return "guest powered off";
        case StopKind::reset:
            return "guest reset";
        case StopKind::halted:
            return "guest halted (every vCPU in hlt with interrupts disabled)";
        case StopKind::crashed:
            return "guest crashed";
        case StopKind::quit:
            return "quit from the console (Ctrl-A x)";
        case StopKind::signal:
            return "stopped by a signal";
    }
    return "stopped";
}

bool StopRequest::request(StopKind kind, std::string message) noexcept {
    {
        std::lock_guard lock(mutex_);
        if (reason_) return false;
        reason_ = StopReason{kind, std::move(message)};
        requested_.store(true, std::memory_order_release);
    }
    process_timeline().mark(Phase::shutdown_request);
    if (notify_) notify_();
    return true;
}

std::optional<StopReason> StopRequest::reason() const {
    std::lock_guard lock(mutex_);
    return reason_;
}

}  // namespace kvmlet
