#include "vmm/kvm/vcpu_exit.hpp"

#include <algorithm>

namespace kvmlet {
namespace {

VcpuExit decode_io(kvm_run& run, std::size_t run_size) noexcept {
    auto const& io = run.io;
    std::uint64_t bytes = std::uint64_t{io.size} * io.count;
    bool valid_size = io.size == 1 || io.size == 2 || io.size == 4;
    if (!valid_size || io.count == 0 || io.data_offset > run_size || bytes > run_size - io.data_offset)
        return Unsupported{KVM_EXIT_IO};
    // Safety: [data_offset, data_offset + bytes) was checked to lie inside the kvm_run mapping.
    auto* data = reinterpret_cast<std::byte*>(&run) + io.data_offset;
    if (io.direction == KVM_EXIT_IO_OUT)
        return IoOut{io.port, io.size, io.count, std::span<std::byte const>(data, bytes)};
    return IoIn{io.port, io.size, io.count, std::span<std::byte>(data, bytes)};
}

VcpuExit decode_mmio(kvm_run& run) noexcept {
    auto& mmio = run.mmio;
    if (mmio.len == 0 || mmio.len > sizeof mmio.data) return Unsupported{KVM_EXIT_MMIO};
    // Safety: mmio.data is a u8[8] inside kvm_run; len was checked against it.
    auto* data = reinterpret_cast<std::byte*>(mmio.data);
    if (mmio.is_write) return MmioWrite{mmio.phys_addr, std::span<std::byte const>(data, mmio.len)};
    return MmioRead{mmio.phys_addr, std::span<std::byte>(data, mmio.len)};
}

VcpuExit decode_internal_error(kvm_run const& run) noexcept {
    InternalError e{};
    e.suberror = run.internal.suberror;
    e.ndata = std::min<std::uint32_t>(run.internal.ndata, static_cast<std::uint32_t>(e.data.size()));
    std::copy_n(run.internal.data, e.ndata, e.data.begin());
    // For emulation failures KVM may overlay flags and the instruction bytes on data[0..2].
    auto const& failure = run.emulation_failure;
    if (e.suberror == KVM_INTERNAL_ERROR_EMULATION && run.internal.ndata >= 3 &&
        (failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
        e.instruction_size = std::min<std::uint8_t>(failure.insn_size, 15);
        std::copy_n(failure.insn_bytes, e.instruction_size, e.instruction.begin());
    }
    return e;
}

}  // namespace

VcpuExit decode_exit(kvm_run& run, std::size_t run_size) noexcept {
    switch (run.exit_reason) {
        case KVM_EXIT_IO:
            return decode_io(run, run_size);
        case KVM_EXIT_MMIO:
            return decode_mmio(run);
        case KVM_EXIT_HLT:
            return Halt{};
        case KVM_EXIT_SHUTDOWN:
            return Shutdown{};
        case KVM_EXIT_SYSTEM_EVENT:
            return SystemEvent{run.system_event.type};
        case KVM_EXIT_FAIL_ENTRY:
            return FailEntry{run.fail_entry.hardware_entry_failure_reason};
        case KVM_EXIT_INTERNAL_ERROR:
            return decode_internal_error(run);
        case KVM_EXIT_INTR:
            return Interrupted{};
        default:
            return Unsupported{run.exit_reason};
    }
}

}  // namespace kvmlet
