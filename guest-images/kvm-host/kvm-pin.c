/* kvm-pin: holds two idle VMs open for as long as the emulated KVM host runs, so that KVM's
 * static keys never flip while tests create and destroy VMs.
 *
 * Why (measured 2026-12-07): under QEMU TCG with several vCPU threads, the emulated host wedged
 * with every CPU stuck at the same instruction of finish_task_switch(), the jump of the
 * preempt_notifier_key static branch; the soft-lockup and RCU-stall reports named no other
 * cause. KVM increments that key when the first VM is created and decrements it when the last
 * one goes, and each 0 <-> 1 change live-patches the scheduler's hot path on every CPU
 * (text_poke_bp), which TCG's cross-CPU code modification does not survive reliably. Tests
 * that create VMs back to back (restart.sh: a hundred resets) hit it often. With one VM
 * always open the count never returns to 0 and the code is never patched again. The same
 * holds for the keys of the in-kernel LAPIC (apic_sw_disabled: a vCPU whose LAPIC the guest
 * never enables) and for vCPUs without one (kvm_has_noapic_vcpu: a VM without an irqchip).
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int must(int fd, const char *what)
{
    if (fd < 0) {
        perror(what);
        _exit(1);
    }
    return fd;
}

int main(void)
{
    int kvm = must(open("/dev/kvm", O_RDWR | O_CLOEXEC), "kvm-pin: /dev/kvm");

    int with_lapic = must(ioctl(kvm, KVM_CREATE_VM, 0), "kvm-pin: KVM_CREATE_VM");
    must(ioctl(with_lapic, KVM_CREATE_IRQCHIP, 0), "kvm-pin: KVM_CREATE_IRQCHIP");
    must(ioctl(with_lapic, KVM_CREATE_VCPU, 0), "kvm-pin: KVM_CREATE_VCPU");

    int without_lapic = must(ioctl(kvm, KVM_CREATE_VM, 0), "kvm-pin: KVM_CREATE_VM");
    must(ioctl(without_lapic, KVM_CREATE_VCPU, 0), "kvm-pin: KVM_CREATE_VCPU");

    printf("kvm-pin: holding two idle VMs (KVM's static keys stay set)\n");
    fflush(stdout);
    for (;;)
        pause();
}
