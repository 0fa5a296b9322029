#include "vmm/vcpu/x86_64/dump.hpp"

#include <cpuid.h>
#include <fmt/format.h>

#include <array>
#include <cstring>
#include <string_view>

namespace kvmlet::x86_64 {
namespace {

constexpr std::size_t max_instruction_length = 15;  // SDM Vol. 2, 2.3.11

// CPUID leaf 0: the vendor string in EBX, EDX, ECX (AMD APM Vol. 3, E.3.1).
constexpr unsigned cpuid_leaf_vendor = 0;
constexpr std::string_view vendor_amd = "AuthenticAMD", vendor_hygon = "HygonGenuine";

// Whether this host's KVM is kvm-amd (SVM), read from the host CPU.
bool host_uses_svm() noexcept {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(cpuid_leaf_vendor, &eax, &ebx, &ecx, &edx) == 0) return false;
    std::array<char, 12> vendor{};
    std::memcpy(vendor.data(), &ebx, 4);
    std::memcpy(vendor.data() + 4, &edx, 4);
    std::memcpy(vendor.data() + 8, &ecx, 4);
    std::string_view const name(vendor.data(), vendor.size());
    return name == vendor_amd || name == vendor_hygon;
}

std::string format_segment(char const* name, kvm_segment const& s) {
    return fmt::format("{:<3}={:04x} base={:016x} limit={:08x} type={:x} dpl={} l={} db={} present={}", name,
                       s.selector, s.base, s.limit, s.type, s.dpl, s.l, s.db, s.present);
}

std::string instruction_bytes_at_rip(VcpuFd const& vcpu, GuestMemory const& memory, std::uint64_t rip) {
    auto physical = vcpu.translate(rip);
    if (!physical) return "(RIP is not mapped)";
    std::array<std::uint8_t, max_instruction_length> bytes{};
    // Read as much as lies inside RAM, up to the instruction length limit.
    std::size_t n = bytes.size();
    while (n > 0 &&
           !memory.read_bytes(GuestAddress{*physical}, std::as_writable_bytes(std::span{bytes.data(), n})))
        --n;
    if (n == 0) return fmt::format("(RIP at physical {:#x} is outside RAM)", *physical);
    return hex_bytes(std::span{bytes.data(), n});
}

}  // namespace

std::string hex_bytes(std::span<std::uint8_t const> bytes) {
    std::string out;
    for (auto b : bytes) out += fmt::format("{}{:02x}", out.empty() ? "" : " ", b);
    return out;
}

std::string dump_state(VcpuFd const& vcpu, GuestMemory const& memory) {
    kvm_regs r = vcpu.regs();
    kvm_sregs s = vcpu.sregs();
    std::string out = fmt::format(
        "RAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}\n"
        "RSI={:016x} RDI={:016x} RBP={:016x} RSP={:016x}\n"
        "R8 ={:016x} R9 ={:016x} R10={:016x} R11={:016x}\n"
        "R12={:016x} R13={:016x} R14={:016x} R15={:016x}\n"
        "RIP={:016x} RFLAGS={:08x}\n",
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14,
        r.r15, r.rip, r.rflags);
    for (auto [name, seg] : {std::pair{"CS", &s.cs},
                             {"SS", &s.ss},
                             {"DS", &s.ds},
                             {"ES", &s.es},
                             {"FS", &s.fs},
                             {"GS", &s.gs},
                             {"TR", &s.tr}})
        out += format_segment(name, *seg) + '\n';
    out +=
        fmt::format("GDT={:016x}/{:x} IDT={:016x}/{:x}\n", s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
    out += fmt::format("CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x} EFER={:x} APIC_BASE={:x}\n", s.cr0,
                       s.cr2, s.cr3, s.cr4, s.efer, s.apic_base);
    out += "code at RIP: " + instruction_bytes_at_rip(vcpu, memory, r.rip);
    return out;
}

std::string describe_triple_fault() {
    if (!host_uses_svm()) return "triple fault";
    // arch/x86/kvm/svm/svm.c, shutdown_interception(): clear_page(vmcb); kvm_vcpu_reset(vcpu, true).
    return "triple fault (KVM on AMD resets the vCPU at a triple fault: the registers below are its reset "
           "state, not the faulting one)";
}

std::string describe_internal_error(InternalError const& e) {
    std::string out;
    switch (e.suberror) {
        case KVM_INTERNAL_ERROR_EMULATION:
            out = "KVM internal error: instruction emulation failed";
            break;
        case KVM_INTERNAL_ERROR_SIMUL_EX:
            out = "KVM internal error: exception while delivering an exception";
            break;
        case KVM_INTERNAL_ERROR_DELIVERY_EV:
            out = "KVM internal error: event delivery failed";
            break;
        default:
            out = fmt::format("KVM internal error, suberror {}", e.suberror);
            break;
    }
    if (e.instruction_size > 0)
        out += " (instruction bytes: " + hex_bytes(std::span{e.instruction.data(), e.instruction_size}) + ")";
    return out;
}

}  // namespace kvmlet::x86_64
