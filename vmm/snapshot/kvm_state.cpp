#include "vmm/snapshot/kvm_state.hpp"

#include <algorithm>
#include <string>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"

namespace kvmlet::snapshot {
namespace {

// Bounds for the counts read from a file (KVM's own limits are lower).
constexpr std::uint32_t max_cpuid_entries = 256;
constexpr std::uint32_t max_msrs = 1024;

constexpr std::uint32_t msr_ia32_tsc_deadline = 0x6e0;  // SDM Vol. 4, table 2-2

struct Capability {
    unsigned id;
    char const* name;
};
constexpr Capability needed[] = {
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
    {KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS"},
    {KVM_CAP_XSAVE, "KVM_CAP_XSAVE"},
    {KVM_CAP_XCRS, "KVM_CAP_XCRS"},
    {KVM_CAP_PIT_STATE2, "KVM_CAP_PIT_STATE2"},
    {KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK"},
};

}  // namespace

void require_capabilities(VmFd const& vm) {
    std::string missing;
    for (auto const& cap : needed)
        if (vm.check_extension(cap.id) <= 0)
            missing += fmt::format("{}{}", missing.empty() ? "" : ", ", cap.name);
    if (!missing.empty())
        throw Error(
            fmt::format("snapshot: this host's KVM lacks {} (needed to save and restore a VM)", missing));
}

void VcpuState::save(StateWriter& out) const {
    out.put_vector(cpuid);
    out.put(mp_state);
    out.put(regs);
    out.put(sregs);
    out.put(xsave);
    out.put(xcrs);
    out.put(debug_regs);
    out.put(lapic);
    out.put_vector(msrs);
    out.put(events);
    out.put(tsc_khz);
}

VcpuState VcpuState::load(StateReader& in) {
    VcpuState s;
    s.cpuid = in.get_vector<kvm_cpuid_entry2>(max_cpuid_entries);
    s.mp_state = in.get<kvm_mp_state>();
    s.regs = in.get<kvm_regs>();
    s.sregs = in.get<kvm_sregs>();
    s.xsave = in.get<kvm_abi::XsaveArea>();
    s.xcrs = in.get<kvm_xcrs>();
    s.debug_regs = in.get<kvm_debugregs>();
    s.lapic = in.get<kvm_lapic_state>();
    s.msrs = in.get_vector<kvm_msr_entry>(max_msrs);
    s.events = in.get<kvm_vcpu_events>();
    s.tsc_khz = in.get<std::uint32_t>();
    in.finish();
    return s;
}

VcpuState capture(VcpuFd& vcpu, std::span<std::uint32_t const> msr_indices) {
    vcpu.complete_pending_exit();
    VcpuState s;
    s.mp_state = vcpu.mp_state();
    s.regs = vcpu.regs();
    s.sregs = vcpu.sregs();
    s.xsave = vcpu.xsave();
    s.xcrs = vcpu.xcrs();
    s.debug_regs = vcpu.debug_regs();
    s.lapic = vcpu.lapic();
    s.tsc_khz = vcpu.tsc_khz().value_or(0);
    // The TSC deadline last: KVM reads it against the TSC, which must be back first on restore.
    s.msrs = vcpu.msrs(msr_indices);
    std::stable_partition(s.msrs.begin(), s.msrs.end(),
                          [](kvm_msr_entry const& e) { return e.index != msr_ia32_tsc_deadline; });
    s.events = vcpu.vcpu_events();
    s.cpuid = vcpu.cpuid();
    return s;
}

void restore(VcpuFd const& vcpu, VcpuState const& s) {
    if (s.tsc_khz != 0) {
        auto here = vcpu.tsc_khz();
        if (here && *here != s.tsc_khz)
            log::warn(
                "snapshot: the guest's TSC ran at {} kHz, this host's runs at {} kHz: its clock may drift",
                s.tsc_khz, *here);
    }
    vcpu.set_cpuid(s.cpuid);
    vcpu.set_mp_state(s.mp_state);
    vcpu.set_regs(s.regs);
    vcpu.set_sregs(s.sregs);
    vcpu.set_xsave(s.xsave);
    vcpu.set_xcrs(s.xcrs);
    vcpu.set_debug_regs(s.debug_regs);
    vcpu.set_lapic(s.lapic);
    vcpu.set_msrs(s.msrs);
    vcpu.set_vcpu_events(s.events);
}

void VmState::save(StateWriter& out) const {
    out.put(pic_master);
    out.put(pic_slave);
    out.put(ioapic);
    out.put(pit);
    out.put(clock);
}

VmState VmState::load(StateReader& in) {
    VmState s;
    s.pic_master = in.get<kvm_irqchip>();
    s.pic_slave = in.get<kvm_irqchip>();
    s.ioapic = in.get<kvm_irqchip>();
    s.pit = in.get<kvm_pit_state2>();
    s.clock = in.get<kvm_clock_data>();
    in.finish();
    if (s.pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER || s.pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
        s.ioapic.chip_id != KVM_IRQCHIP_IOAPIC)
        throw in.malformed("irqchip ids are not PIC master, PIC slave and IOAPIC");
    return s;
}

VmState capture(VmFd const& vm) {
    VmState s;
    s.pic_master = vm.irqchip(KVM_IRQCHIP_PIC_MASTER);
    s.pic_slave = vm.irqchip(KVM_IRQCHIP_PIC_SLAVE);
    s.ioapic = vm.irqchip(KVM_IRQCHIP_IOAPIC);
    s.pit = vm.pit();
    s.clock = vm.clock();
    return s;
}

void restore(VmFd const& vm, VmState const& s, bool clock_realtime) {
    vm.set_pit(s.pit);
    // KVM_SET_CLOCK takes only KVM_CLOCK_REALTIME among the flags KVM_GET_CLOCK reports. Without
    // it the guest's clock goes on from where it stopped (the time spent saved is not counted);
    // with it KVM adds the wall-clock time elapsed since `realtime` (KVM API, 4.79 KVM_SET_CLOCK).
    kvm_clock_data clock = s.clock;
    if (clock_realtime && (clock.flags & KVM_CLOCK_REALTIME) == 0)
        throw Error(
            "snapshot: clock_realtime: the saved KVM clock has no real time (its host's clock was not "
            "stable)");
    clock.flags = clock_realtime ? KVM_CLOCK_REALTIME : 0;
    vm.set_clock(clock);
    vm.set_irqchip(s.pic_master);
    vm.set_irqchip(s.pic_slave);
    vm.set_irqchip(s.ioapic);
}

}  // namespace kvmlet::snapshot
