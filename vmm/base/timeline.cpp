#include "vmm/base/timeline.hpp"

namespace kvmlet {

std::string_view name(Phase phase) noexcept {
    switch (phase) {
        case Phase::process_start:
            return "process_start";
        case Phase::args_parsed:
            return "args_parsed";
        case Phase::vm_created:
            return "vm_created";
        case Phase::memory_ready:
            return "memory_ready";
        case Phase::devices_ready:
            return "devices_ready";
        case Phase::kernel_loaded:
            return "kernel_loaded";
        case Phase::first_kvm_run:
            return "first_kvm_run";
        case Phase::first_console_byte:
            return "first_console_byte";
        case Phase::boot_timer:
            return "boot_timer";
        case Phase::shutdown_request:
            return "shutdown_request";
        case Phase::process_exit:
            return "process_exit";
    }
    return "?";
}

std::string_view name(ExitReason reason) noexcept {
    switch (reason) {
        case ExitReason::pio:
            return "pio";
        case ExitReason::mmio:
            return "mmio";
        case ExitReason::hlt:
            return "hlt";
        case ExitReason::shutdown:
            return "shutdown";
        case ExitReason::system_event:
            return "system_event";
        case ExitReason::internal_error:
            return "internal_error";
        case ExitReason::fail_entry:
            return "fail_entry";
        case ExitReason::signal:
            return "signal";
        case ExitReason::other:
            return "other";
    }
    return "?";
}

Timeline::Timeline() noexcept {
    mark(Phase::process_start, ProcessTimes{0, 0});
}

void Timeline::mark(Phase phase, ProcessTimes at) noexcept {
    auto index = static_cast<std::uint8_t>(phase);
    Mark& m = marks_[index];
    // First caller wins; `set` publishes `at` to readers.
    if (m.set.load(std::memory_order_acquire) || m.writing.exchange(true, std::memory_order_acq_rel)) return;
    m.at = at;
    m.set.store(true, std::memory_order_release);
    std::uint8_t current = current_.load(std::memory_order_relaxed);
    while (current < index && !current_.compare_exchange_weak(current, index, std::memory_order_relaxed)) {
    }
}

void Timeline::count_exit(ExitReason reason) noexcept {
    exits_[current_.load(std::memory_order_relaxed)][static_cast<std::size_t>(reason)].fetch_add(
        1, std::memory_order_relaxed);
}

std::optional<ProcessTimes> Timeline::reached(Phase phase) const noexcept {
    Mark const& m = marks_[static_cast<std::size_t>(phase)];
    if (!m.set.load(std::memory_order_acquire)) return std::nullopt;
    return m.at;
}

std::uint64_t Timeline::exits(Phase phase, ExitReason reason) const noexcept {
    return exits_[static_cast<std::size_t>(phase)][static_cast<std::size_t>(reason)].load(
        std::memory_order_relaxed);
}

std::uint64_t Timeline::total_exits(ExitReason reason) const noexcept {
    std::uint64_t total = 0;
    for (std::size_t p = 0; p < phase_count; ++p) total += exits(static_cast<Phase>(p), reason);
    return total;
}

Timeline& process_timeline() noexcept {
    static Timeline timeline;
    return timeline;
}

}  // namespace kvmlet
