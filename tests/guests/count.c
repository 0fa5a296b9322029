/* Counts for ever on vCPU 0 and prints every value on COM1, "count <n>": the guest of the
 * pause/resume test (lifecycle_driver), which checks that the values only go up, one at a time
 * (nothing lost, nothing repeated), and that none is printed while the machine is paused. */
#include "guest.h"

void guest_main(void)
{
    serial_puts("counting\r\n");
    for (uint64_t n = 1;; ++n) {
        serial_puts("count ");
        serial_put_dec(n);
        serial_puts("\r\n");
    }
}
