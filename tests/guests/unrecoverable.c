/* Runs into an instruction KVM cannot emulate and kvmlet does not recover: kvmlet must stop
 * with status 3 and a register dump, whatever the host.
 * - On a kvm_pvm host (guest CPL0 code is instruction-emulated there, /work/shared/HOST.md)
 *   popcnt is the first such instruction: kvmlet shows its bytes (f3 48 0f b8 ...).
 * - On real KVM popcnt simply runs; the guest then jumps to guest-physical memory that no
 *   memory slot backs (an empty part of the MMIO hole): KVM cannot fetch the instruction to
 *   emulate it and reports an emulation failure. */
#include "guest.h"

/* In the identity-mapped first 4 GiB, below the ECAM window (0xe0000000) and past the
 * virtio-mmio windows (from 0xd0000000, 4 KiB each): no device and no RAM. */
#define UNBACKED_CODE 0xdf000000ul

void guest_main(void)
{
    uint64_t value = 0xff, bits;
    serial_puts("running popcnt\r\n");
    __asm__ volatile("popcnt %1, %0" : "=r"(bits) : "r"(value));
    serial_puts("popcnt ran\r\n");
    serial_puts("jumping to unbacked memory\r\n");
    ((void (*)(void))UNBACKED_CODE)();
    serial_puts("unbacked code returned\r\n");
    guest_reset();
}
