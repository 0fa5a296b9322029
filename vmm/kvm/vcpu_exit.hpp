#pragma once
// VcpuExit: the kvm_run union decoded once into a closed set of types (STYLE.md §5.6). Dispatch
// with an exhaustive std::visit: a new exit kind is a compile error, not a silent default.
#include <linux/kvm.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>

namespace kvmlet {

// PIO: `data` holds size * count bytes in the kvm_run page (count > 1 for rep ins/outs).
struct IoIn {
    std::uint16_t port;
    std::uint8_t size;
    std::uint32_t count;
    std::span<std::byte> data;
};
struct IoOut {
    std::uint16_t port;
    std::uint8_t size;
    std::uint32_t count;
    std::span<std::byte const> data;
};
struct MmioRead {
    std::uint64_t address;
    std::span<std::byte> data;  // 1..8 bytes, filled by the VMM
};
struct MmioWrite {
    std::uint64_t address;
    std::span<std::byte const> data;
};
struct Halt {};      // only without an in-kernel LAPIC
struct Shutdown {};  // triple fault
struct SystemEvent {
    std::uint32_t type;  // KVM_SYSTEM_EVENT_SHUTDOWN, _RESET, _CRASH
};
struct FailEntry {
    std::uint64_t hardware_reason;
};
struct InternalError {
    std::uint32_t suberror;  // KVM_INTERNAL_ERROR_EMULATION, ...
    std::uint32_t ndata;
    std::array<std::uint64_t, 16> data;
    std::uint8_t instruction_size;  // 0 when KVM did not report the bytes
    std::array<std::uint8_t, 15> instruction;
};
struct Interrupted {};  // KVM_RUN returned EINTR (a kick) or KVM_EXIT_INTR
struct Unsupported {
    std::uint32_t reason;  // an exit kvmlet does not expect with its configuration
};

using VcpuExit = std::variant<IoIn, IoOut, MmioRead, MmioWrite, Halt, Shutdown, SystemEvent, FailEntry,
                              InternalError, Interrupted, Unsupported>;

// Decodes the exit KVM just wrote into `run` (a mapping of `run_size` bytes). The PIO data range
// is checked against the mapping, so a malformed exit becomes Unsupported, never a wild pointer.
VcpuExit decode_exit(kvm_run& run, std::size_t run_size) noexcept;

}  // namespace kvmlet
