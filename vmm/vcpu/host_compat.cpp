#include "vmm/vcpu/host_compat.hpp"

#include <asm/kvm_para.h>
#include <sys/stat.h>

#include "vmm/base/log.hpp"

namespace kvmlet {
namespace {

constexpr std::uint32_t cpuid_leaf1_ecx_cx16 = 1u << 13;  // CMPXCHG16B (SDM Vol. 2A, CPUID)

// KVM paravirtual features this host cannot serve: the measured set (PV_TLB_FLUSH,
// POLL_CONTROL, ASYNC_PF_INT) plus every feature that makes the guest issue a hypercall.
constexpr std::uint32_t kvm_pv_features_to_clear =
    (1u << KVM_FEATURE_PV_UNHALT) | (1u << KVM_FEATURE_PV_TLB_FLUSH) | (1u << KVM_FEATURE_PV_SEND_IPI) |
    (1u << KVM_FEATURE_POLL_CONTROL) | (1u << KVM_FEATURE_PV_SCHED_YIELD) | (1u << KVM_FEATURE_ASYNC_PF_INT) |
    (1u << KVM_FEATURE_HC_MAP_GPA_RANGE);

constexpr std::uint8_t opcode_int3 = 0xcc;
constexpr std::uint8_t opcode_fwait = 0x9b;
constexpr std::uint8_t vector_breakpoint = 3;             // #BP
constexpr std::uint16_t x87_status_error_summary = 0x80;  // FSW.ES (SDM Vol. 1, 8.1.3)

bool at_cpl0(kvm_sregs const& sregs) {
    return (sregs.cs.selector & 3) == 0;
}

// int3: trap-like, so #BP is delivered with RIP already past the instruction.
void recover_int3(VcpuFd const& vcpu, kvm_regs regs) {
    regs.rip += 1;
    vcpu.set_regs(regs);
    kvm_vcpu_events events = vcpu.vcpu_events();
    events.exception.injected = 1;
    events.exception.nr = vector_breakpoint;
    events.exception.has_error_code = 0;
    events.exception.error_code = 0;
    events.flags = 0;
    vcpu.set_vcpu_events(events);
}

}  // namespace

HostCompat detect_host_compat(char const* sysfs_module_dir) {
    struct stat st {};
    return ::stat(sysfs_module_dir, &st) == 0 && S_ISDIR(st.st_mode) ? HostCompat::pvm : HostCompat::none;
}

char const* name(HostCompat mode) noexcept {
    return mode == HostCompat::pvm ? "pvm" : "none";
}

std::string compat_cmdline(HostCompat mode) {
    if (mode == HostCompat::none) return {};
    // Each avoids an instruction this host cannot run at CPL0 (XSAVE family, RD/WRFSBASE, POPCNT,
    // STAC/CLAC) or runs byte by byte (rep movs/stos with ERMS/FSRM). The SIMD extensions go too:
    // the host keeps them in CPUID whatever the VMM sets, and a kernel that sees them runs
    // kernel_fpu_begin() (ldmxcsr) and SSE code in its crypto and checksum paths (blake2s for
    // the random pool, crc32c-intel for ext4). The flag turns on the guest-side SYSCALL quirk of
    // guest-images/linux/pvm-syscall-quirk.patch.
    return "noxsave nofsgsbase clearcpuid=popcnt,smap,erms,fsrm,ssse3,sse4_1,sse4_2,aes,pclmulqdq,sha_ni "
           "kvmlet.pvm_quirks";
}

void adjust_cpuid(HostCompat mode, std::vector<kvm_cpuid_entry2>& entries) noexcept {
    if (mode == HostCompat::none) return;
    for (auto& e : entries) {
        if (e.function == 1) e.ecx &= ~cpuid_leaf1_ecx_cx16;
        if (e.function == KVM_CPUID_FEATURES) e.eax &= ~kvm_pv_features_to_clear;
    }
}

std::optional<std::uint8_t> failing_opcode(InternalError const& error, VcpuFd const& vcpu,
                                           GuestMemory const& memory) {
    if (error.instruction_size > 0) return error.instruction[0];
    auto physical = vcpu.translate(vcpu.regs().rip);
    if (!physical) return std::nullopt;
    return memory.read<std::uint8_t>(GuestAddress{*physical});
}

Recovery recover(HostCompat mode, InternalError const& error, VcpuFd const& vcpu,
                 GuestMemory const& memory) noexcept {
    if (mode == HostCompat::none || error.suberror != KVM_INTERNAL_ERROR_EMULATION)
        return Recovery::not_recovered;
    try {
        kvm_sregs sregs = vcpu.sregs();
        if (!at_cpl0(sregs)) return Recovery::not_recovered;
        auto opcode = failing_opcode(error, vcpu, memory);
        if (opcode == opcode_int3) {
            recover_int3(vcpu, vcpu.regs());
            return Recovery::recovered;
        }
        if (opcode == opcode_fwait && (vcpu.fpu().fsw & x87_status_error_summary) == 0) {
            kvm_regs regs = vcpu.regs();
            regs.rip += 1;  // no pending x87 exception: fwait does nothing
            vcpu.set_regs(regs);
            return Recovery::recovered;
        }
    } catch (std::exception const& e) {
        log::warn("host-compat: cannot recover: {}", e.what());
    }
    return Recovery::not_recovered;
}

}  // namespace kvmlet
