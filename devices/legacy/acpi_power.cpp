#include "devices/legacy/acpi_power.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "vmm/base/log.hpp"

namespace kvmlet {
namespace {

// ACPI 6.5 §4.8.3.7 Table 4.20 "Sleep Control Register".
constexpr std::uint8_t sleep_enable = 1u << 5;  // SLP_EN
constexpr std::uint8_t sleep_type_shift = 2;    // SLP_TYP, bits 4:2
constexpr std::uint8_t sleep_type_mask = 0x7;

void note_ignored(IoAccess const& access, std::size_t size) noexcept {
    static log::RateLimit limit(10, std::chrono::seconds(1));
    if (log::enabled(log::Level::debug) && limit.allow())
        log::debug("acpi: ignored {}-byte access at port {:#x}", size, access.address);
}

}  // namespace

AcpiPower::AcpiPower(Ports ports, Values values, Callbacks callbacks)
    : ports_(ports), values_(values), callbacks_(std::move(callbacks)) {}

void AcpiPower::read(IoAccess const& access, std::span<std::byte> data) noexcept {
    // Sleep control and reset are write-only; sleep status never shows a wake event.
    std::fill(data.begin(), data.end(), std::byte{0});
    if (data.size() != 1) note_ignored(access, data.size());
}

void AcpiPower::write(IoAccess const& access, std::span<std::byte const> data) noexcept {
    if (data.size() != 1) {
        note_ignored(access, data.size());
        return;
    }
    auto const value = std::to_integer<std::uint8_t>(data[0]);
    if (access.address == ports_.sleep_control) {
        write_sleep_control(value);
    } else if (access.address == ports_.reset) {
        if (value == values_.reset_value && callbacks_.reset) callbacks_.reset();
    }
    // Sleep status: writes clear WAK_STS, which is never set.
}

void AcpiPower::write_sleep_control(std::uint8_t value) noexcept {
    if ((value & sleep_enable) == 0) return;
    auto const type = static_cast<std::uint8_t>((value >> sleep_type_shift) & sleep_type_mask);
    if (type == values_.s5_sleep_type) {
        if (callbacks_.power_off) callbacks_.power_off();
        return;
    }
    // A guest could ask in a loop; one line tells the operator why the guest did not sleep.
    if (!unsupported_sleep_logged_.test_and_set())
        log::warn("acpi: the guest asked for sleep type {}; only soft-off ({}) is supported", type,
                  values_.s5_sleep_type);
}

}  // namespace kvmlet
