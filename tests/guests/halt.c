/* Halts with interrupts disabled: with every vCPU stopped so, kvmlet exits 0 ("halted"). */
#include "guest.h"

void guest_main(void)
{
    serial_puts("halting\r\n");
    guest_halt();
}
