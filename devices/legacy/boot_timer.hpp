#pragma once
// Firecracker-compatible boot timer: a guest signals "boot complete" by writing the byte 123 at
// offset 0 (Firecracker's MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE). Each such write is timed against
// process start and logged at info level in Firecracker's format, which existing scripts parse:
//   Guest-boot-time = {wall_us:>6} us {wall_ms} ms, {cpu_us:>6} CPU us {cpu_ms} CPU ms
// Like Firecracker, only one-byte writes at offset 0 count; everything else is ignored and reads
// return zeros. The log line is rate-limited; count() and first() see every write.
//
// Bus placement: the same object on the PIO bus at pio_port (length pio_length) and on the MMIO bus
// at x86_64::boot_timer_mmio (length mmio_length).
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>

#include "vmm/base/process_clock.hpp"
#include "vmm/base/state_stream.hpp"
#include "vmm/bus/bus_device.hpp"

namespace kvmlet {

class BootTimer final : public BusDevice, public Persistent {
public:
    static constexpr std::uint8_t boot_complete = 123;
    static constexpr std::uint64_t pio_port = 0x3f0;
    static constexpr std::uint64_t pio_length = 1;
    static constexpr std::uint64_t mmio_length = 0x1000;

    using Clock = ProcessTimes (*)() noexcept;

    // Called once, on the first boot-complete write, with its time (from a vCPU thread).
    using OnBootComplete = std::function<void(ProcessTimes)>;

    explicit BootTimer(Clock clock = &since_process_start, OnBootComplete on_first = {}) noexcept
        : clock_(clock), on_first_(std::move(on_first)) {}
    BootTimer(BootTimer const&) = delete;
    BootTimer& operator=(BootTimer const&) = delete;

    void read(IoAccess const& access, std::span<std::byte> data) noexcept override;
    void write(IoAccess const& access, std::span<std::byte const> data) noexcept override;

    // The time of the first boot-complete write, if any, and how many there were.
    std::optional<ProcessTimes> first() const noexcept;
    std::uint64_t count() const noexcept;

    // Snapshot state: how many boot-complete writes there were. The time of the first is the saved
    // process's and is not kept: in a restored machine the next write counts as its first (timed
    // against the new process: when the restored guest got that far).
    void save(StateWriter& out) const override;
    void load(StateReader& in) override;

private:
    Clock clock_;
    OnBootComplete on_first_;
    mutable std::mutex mutex_;  // guards first_ and count_
    std::optional<ProcessTimes> first_;
    std::uint64_t count_ = 0;
};

}  // namespace kvmlet
