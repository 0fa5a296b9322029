/* Executes ud2. kvmlet's IDT has limit 0, so the #UD cannot be delivered: #GP, then #DF, then
 * a triple fault, which kvmlet reports with a register dump and exit status 3. */
#include "guest.h"

void guest_main(void)
{
    serial_puts("faulting\r\n");
    __asm__ volatile("ud2");
    serial_puts("still running after ud2\r\n");
    guest_halt();
}
