/* Executes popcnt at CPL0, which this development host cannot emulate and kvmlet does not
 * recover: kvmlet must stop with status 3 and show the instruction bytes (f3 48 0f b8 ...).
 * Only meaningful on a kvm_pvm host; on real KVM popcnt simply runs. */
#include "guest.h"

void guest_main(void)
{
    uint64_t value = 0xff, bits;
    serial_puts("running popcnt\r\n");
    __asm__ volatile("popcnt %1, %0" : "=r"(bits) : "r"(value));
    serial_puts("popcnt ran\r\n");
    guest_reset();
}
