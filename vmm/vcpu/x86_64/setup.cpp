#include "vmm/vcpu/x86_64/setup.hpp"

#include <cstring>

namespace kvmlet::x86_64 {
namespace {

// x87 and SSE state after FNINIT / power-up (SDM Vol. 1, 8.1.1 and 10.2.3).
constexpr std::uint16_t fpu_control_word_default = 0x37f;
constexpr std::uint32_t mxcsr_default = 0x1f80;

// Local APIC LVT registers (SDM Vol. 3A, 11.5.1) and delivery modes.
constexpr std::size_t apic_lvt_lint0 = 0x350;
constexpr std::size_t apic_lvt_lint1 = 0x360;
constexpr std::uint32_t apic_delivery_mode_mask = 0x700;
constexpr std::uint32_t apic_delivery_extint = 0x700;
constexpr std::uint32_t apic_delivery_nmi = 0x400;

// MSRs at entry, as a BIOS leaves them for Linux (SDM Vol. 4, Table 2-2): syscall entry points
// cleared, fast strings on, MTRRs on with write-back as the default memory type.
constexpr std::uint32_t msr_ia32_sysenter_cs = 0x174, msr_ia32_sysenter_esp = 0x175,
                        msr_ia32_sysenter_eip = 0x176, msr_star = 0xc000'0081, msr_lstar = 0xc000'0082,
                        msr_cstar = 0xc000'0083, msr_syscall_mask = 0xc000'0084,
                        msr_kernel_gs_base = 0xc000'0102, msr_ia32_misc_enable = 0x1a0,
                        msr_mtrr_def_type = 0x2ff;
constexpr std::uint64_t misc_enable_fast_strings = 1u << 0;
constexpr std::uint64_t mtrr_enable = 1u << 11, mtrr_type_write_back = 6;

void set_boot_msrs(VcpuFd const& vcpu) {
    auto entry = [](std::uint32_t index, std::uint64_t value) {
        kvm_msr_entry e{};
        e.index = index;
        e.data = value;
        return e;
    };
    kvm_msr_entry const msrs[] = {
        entry(msr_ia32_sysenter_cs, 0),
        entry(msr_ia32_sysenter_esp, 0),
        entry(msr_ia32_sysenter_eip, 0),
        entry(msr_star, 0),
        entry(msr_lstar, 0),
        entry(msr_cstar, 0),
        entry(msr_syscall_mask, 0),
        entry(msr_kernel_gs_base, 0),
        entry(msr_ia32_misc_enable, misc_enable_fast_strings),
        entry(msr_mtrr_def_type, mtrr_enable | mtrr_type_write_back),
    };
    vcpu.set_msrs(msrs);
}

std::uint32_t read_apic_register(kvm_lapic_state const& lapic, std::size_t offset) {
    std::uint32_t value;
    std::memcpy(&value, lapic.regs + offset, sizeof value);
    return value;
}

void write_apic_register(kvm_lapic_state& lapic, std::size_t offset, std::uint32_t value) {
    std::memcpy(lapic.regs + offset, &value, sizeof value);
}

// LINT0 as ExtINT (the 8259 PIC's output) and LINT1 as NMI: the wiring of a PC, which Linux
// expects when it falls back to the PIC ("virtual wire" mode, MP spec 1.4 §3.6.2.2).
void set_lapic_pins(VcpuFd const& vcpu) {
    kvm_lapic_state lapic = vcpu.lapic();
    std::uint32_t lint0 = read_apic_register(lapic, apic_lvt_lint0);
    std::uint32_t lint1 = read_apic_register(lapic, apic_lvt_lint1);
    write_apic_register(lapic, apic_lvt_lint0, (lint0 & ~apic_delivery_mode_mask) | apic_delivery_extint);
    write_apic_register(lapic, apic_lvt_lint1, (lint1 & ~apic_delivery_mode_mask) | apic_delivery_nmi);
    vcpu.set_lapic(lapic);
}

}  // namespace

kvm_segment to_kvm_segment(Segment const& s) noexcept {
    kvm_segment k{};
    k.base = s.base;
    k.limit = s.limit;
    k.selector = s.selector;
    k.type = s.type;
    k.present = s.present;
    k.dpl = s.dpl;
    k.db = s.db;
    k.s = s.s;
    k.l = s.l;
    k.g = s.g;
    k.unusable = s.present ? 0 : 1;
    return k;
}

void configure_vcpu(VcpuFd const& vcpu, std::span<kvm_cpuid_entry2 const> cpuid) {
    vcpu.set_cpuid(cpuid);
    kvm_fpu fpu{};
    fpu.fcw = fpu_control_word_default;
    fpu.mxcsr = mxcsr_default;
    vcpu.set_fpu(fpu);
    set_boot_msrs(vcpu);
    set_lapic_pins(vcpu);
}

void set_boot_state(VcpuFd const& vcpu, BootCpuState const& state) {
    kvm_sregs sregs = vcpu.sregs();
    sregs.cs = to_kvm_segment(state.cs);
    sregs.ds = to_kvm_segment(state.ds);
    sregs.es = to_kvm_segment(state.es);
    sregs.fs = to_kvm_segment(state.fs);
    sregs.gs = to_kvm_segment(state.gs);
    sregs.ss = to_kvm_segment(state.ss);
    sregs.tr = to_kvm_segment(state.tr);
    sregs.gdt.base = state.gdt.base;
    sregs.gdt.limit = state.gdt.limit;
    sregs.idt.base = state.idt.base;
    sregs.idt.limit = state.idt.limit;
    sregs.cr0 = state.cr0;
    sregs.cr3 = state.cr3;
    sregs.cr4 = state.cr4;
    sregs.efer = state.efer;
    vcpu.set_sregs(sregs);

    kvm_regs regs{};
    regs.rip = state.rip;
    regs.rsp = state.rsp;
    regs.rbp = state.rsp;
    regs.rflags = state.rflags;
    regs.rsi = state.rsi;
    regs.rbx = state.rbx;
    vcpu.set_regs(regs);
}

}  // namespace kvmlet::x86_64
