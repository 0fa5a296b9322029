// Checks, on real KVM, what a Diff snapshot's pages come from (snapshot::take_dirty_pages): KVM's
// dirty log of the RAM slot (what the guest wrote) together with GuestMemory's own marks (what
// the VMM wrote: firmware, devices). A real-mode vCPU runs `mov byte [0x3000], 0x5a; out 0x80,
// al` while the VMM writes page 5 through a slice, as a device does; the take must hold pages 3
// and 5 and nothing else, a second take nothing, and pages given back (a snapshot that failed)
// come back in the next take.
//
//   dirty_log_driver      exit status 0 when every check passed, 1 otherwise (also without a
//                         usable /dev/kvm: these tests fail rather than skip)
#include <cstdio>
#include <variant>

#include "vmm/base/error.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/kvm/vcpu_fd.hpp"
#include "vmm/kvm/vm_fd.hpp"
#include "vmm/memory/guest_memory.hpp"
#include "vmm/snapshot/dirty_pages.hpp"

namespace kvmlet {
namespace {

constexpr std::uint64_t ram_size = 0x10000;
constexpr std::uint64_t code_address = 0x1000;
// mov byte [0x3000], 0x5a; out 0x80, al (16-bit addressing; the OUT is the exit)
constexpr std::uint8_t code[] = {0xc6, 0x06, 0x00, 0x30, 0x5a, 0xe6, 0x80};

int failures = 0;

void check(bool ok, char const* what) {
    std::fprintf(stderr, "dirty_log_driver: %s %s\n", ok ? "ok:" : "FAIL:", what);
    if (!ok) ++failures;
}

bool exactly(snapshot::DirtyPages const& pages, std::initializer_list<std::uint64_t> wanted) {
    for (std::uint64_t page : wanted)
        if (!pages.dirty(0, page)) return false;
    return pages.count() == wanted.size();
}

int run() {
    KvmSystem kvm;
    VmFd vm = kvm.create_vm();
    GuestMemory memory = GuestMemory::create(std::array<RamRange, 1>{RamRange{GuestAddress{0}, ram_size}});
    memory.track_dirty_pages();
    vm.set_memory_region(0, GuestAddress{0}, ram_size, memory.regions()[0].host, true);
    VcpuFd vcpu = vm.create_vcpu(0);
    for (std::size_t i = 0; i < sizeof code; ++i)
        if (!memory.write(GuestAddress{code_address + i}, code[i])) throw Error("code outside RAM");
    check(exactly(snapshot::take_dirty_pages(vm, memory), {1}),
          "the first take holds the code page the VMM wrote");

    kvm_sregs sregs = vcpu.sregs();
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    sregs.ds.base = 0;
    sregs.ds.selector = 0;
    vcpu.set_sregs(sregs);
    kvm_regs regs{};
    regs.rip = code_address;
    regs.rflags = 0x2;
    vcpu.set_regs(regs);
    auto device_write = memory.slice(GuestAddress{0x5000}, 16);
    check(device_write.has_value(), "a device's slice of page 5");
    if (device_write) (*device_write)[0] = std::byte{1};
    VcpuExit exit = vcpu.run();
    auto* out = std::get_if<IoOut>(&exit);
    check(out != nullptr && out->port == 0x80, "the vCPU ran its store and exits at the OUT");
    check(memory.read<std::uint8_t>(GuestAddress{0x3000}) == 0x5a, "the guest's store reached RAM");

    snapshot::DirtyPages const taken = snapshot::take_dirty_pages(vm, memory);
    std::fprintf(stderr, "dirty_log_driver: %llu dirty pages\n",
                 static_cast<unsigned long long>(taken.count()));
    check(exactly(taken, {3, 5}),
          "the take holds page 3 (the guest's, KVM's log) and 5 (the VMM's), nothing else");
    check(snapshot::take_dirty_pages(vm, memory).count() == 0,
          "a second take holds nothing: both logs were cleared");

    snapshot::give_back(memory, taken);
    check(exactly(snapshot::take_dirty_pages(vm, memory), {3, 5}), "pages given back are in the next take");
    return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kvmlet

int main() {
    try {
        return kvmlet::run();
    } catch (std::exception const& e) {
        std::fprintf(stderr, "dirty_log_driver: FAIL: %s\n", e.what());
        return 1;
    }
}
