// Checks, on real KVM, what snapshot::capture() does first: complete the exit kvmlet served last.
// A real-mode vCPU runs `in al, 0x60; out 0x80, al; hlt`; at the IN's exit the VMM puts 0xab in
// kvm_run, as Vcpu::handle does, and captures the vCPU without running it again. Without the
// completion (KVM_RUN with immediate_exit) RIP would still point at the IN and AL would not hold
// 0xab: a restored guest would read the port again, and a byte a device handed over (the 8250's
// receive buffer) would be lost. Then the state is restored into a second VM's vCPU, which runs on
// and writes 0xab to port 0x80: the restored vCPU goes on after the IN, with its data. Last, the
// VM's state (irqchip, PIT, KVM clock) restored 300 ms later: the KVM clock goes on from where it
// was saved, or with clock_realtime is advanced by the time in between.
//
//   snapshot_exit_driver      exit status 0 when every check passed, 1 otherwise (also without a
//                             usable /dev/kvm: these tests fail rather than skip)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <variant>

#include "vmm/base/error.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/kvm/vcpu_fd.hpp"
#include "vmm/kvm/vm_fd.hpp"
#include "vmm/memory/guest_memory.hpp"
#include "vmm/snapshot/kvm_state.hpp"

namespace kvmlet {
namespace {

constexpr std::uint64_t code_address = 0x1000;
constexpr std::uint8_t port_data = 0xab;
// in al, 0x60; out 0x80, al; hlt (neither port is served in the kernel)
constexpr std::uint8_t code[] = {0xe4, 0x60, 0xe6, 0x80, 0xf4};

int failures = 0;

void check(bool ok, char const* what) {
    std::fprintf(stderr, "snapshot_exit_driver: %s %s\n", ok ? "ok:" : "FAIL:", what);
    if (!ok) ++failures;
}

struct RealModeVm {
    VmFd vm;
    GuestMemory memory;
    VcpuFd vcpu;

    explicit RealModeVm(KvmSystem const& kvm)
        : vm(kvm.create_vm()),
          memory(GuestMemory::create(std::array<RamRange, 1>{RamRange{GuestAddress{0}, 0x10000}})),
          vcpu((vm.set_memory_region(0, GuestAddress{0}, 0x10000, memory.regions()[0].host),
                vm.create_irqchip(), vm.create_pit(), vm.create_vcpu(0))) {
        for (std::size_t i = 0; i < sizeof code; ++i)
            if (!memory.write(GuestAddress{code_address + i}, code[i])) throw Error("code outside RAM");
        kvm_sregs sregs = vcpu.sregs();
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        vcpu.set_sregs(sregs);
        kvm_regs regs{};
        regs.rip = code_address;
        regs.rflags = 0x2;
        vcpu.set_regs(regs);
    }
};

int run() {
    KvmSystem kvm;
    RealModeVm first(kvm);
    VcpuExit exit = first.vcpu.run();
    auto* in = std::get_if<IoIn>(&exit);
    check(in != nullptr && in->port == 0x60 && in->size == 1, "the vCPU exits for its IN from port 0x60");
    if (in == nullptr) return 1;
    in->data[0] = std::byte{port_data};
    snapshot::VcpuState state = snapshot::capture(first.vcpu, {});
    check(state.regs.rip == code_address + 2, "captured RIP is past the IN (the exit was completed)");
    check((state.regs.rax & 0xff) == port_data, "captured AL holds the IN's data");

    RealModeVm second(kvm);
    snapshot::restore(second.vcpu, state);
    VcpuExit next = second.vcpu.run();
    auto* out = std::get_if<IoOut>(&next);
    check(out != nullptr && out->port == 0x80 && std::to_integer<std::uint8_t>(out->data[0]) == port_data,
          "the restored vCPU goes on with the OUT of the data it read");

    snapshot::VmState vm_state = snapshot::capture(first.vm);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    RealModeVm plain(kvm);
    snapshot::restore(plain.vm, vm_state);
    auto const plain_ns = static_cast<std::int64_t>(plain.vm.clock().clock - vm_state.clock.clock);
    RealModeVm realtime(kvm);
    snapshot::restore(realtime.vm, vm_state, true);
    auto const realtime_ns = static_cast<std::int64_t>(realtime.vm.clock().clock - vm_state.clock.clock);
    std::fprintf(stderr,
                 "snapshot_exit_driver: KVM clock after a restore 300 ms later: +%lld us, +%lld us with "
                 "clock_realtime\n",
                 static_cast<long long>(plain_ns / 1000), static_cast<long long>(realtime_ns / 1000));
    check(plain_ns >= 0 && plain_ns < 100'000'000, "the KVM clock goes on from where it was saved");
    check(realtime_ns >= 300'000'000, "with clock_realtime it is advanced by the time since the capture");
    return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kvmlet

int main() {
    try {
        return kvmlet::run();
    } catch (std::exception const& e) {
        std::fprintf(stderr, "snapshot_exit_driver: FAIL: %s\n", e.what());
        return 1;
    }
}
