/* Prints a greeting on COM1, then resets through the i8042 (kvmlet exits 0). */
#include "guest.h"

void guest_main(void)
{
    serial_puts("Hello from a kvmlet tiny guest\r\n");
    guest_reset();
}
