/* Writes the Firecracker boot-timer magic (kvmlet logs "Guest-boot-time ="), then resets. */
#include "guest.h"

void guest_main(void)
{
    outb(BOOT_TIMER_PORT, BOOT_TIMER_MAGIC);
    serial_puts("boot timer written\r\n");
    guest_reset();
}
