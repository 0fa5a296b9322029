/* Probes the i8254 PIT's channel 0 and says whether it counts, then resets.
 *
 * Programs channel 0 for mode 2 (rate generator) with the largest count, then latches and reads
 * the counter several times, a few hundred port reads apart. A PIT counts down at 1.193 MHz, so two
 * readings differ ("pit: counting"); with no PIT (kvmlet --pit off) the ports are unclaimed and
 * every read returns the same ("pit: none, reads 0xXXXX"). */
#include "guest.h"

#define PIT_CHANNEL0 0x40
#define PIT_COMMAND 0x43
/* Channel 0, low then high byte, mode 2, binary; and channel 0's counter-latch command. */
#define PIT_CH0_LOHI_MODE2 0x34
#define PIT_CH0_LATCH 0x00
#define POST_PORT 0x80 /* reads of the POST port: a delay that exits to the VMM each time */
#define READINGS 8

static uint16_t read_counter(void)
{
    outb(PIT_COMMAND, PIT_CH0_LATCH);
    uint8_t low = inb(PIT_CHANNEL0);
    uint8_t high = inb(PIT_CHANNEL0);
    return (uint16_t)(low | high << 8);
}

void guest_main(void)
{
    outb(PIT_COMMAND, PIT_CH0_LOHI_MODE2);
    outb(PIT_CHANNEL0, 0xff);
    outb(PIT_CHANNEL0, 0xff);
    uint16_t first = read_counter();
    int changes = 0;
    for (int i = 0; i < READINGS; ++i) {
        for (int delay = 0; delay < 200; ++delay) (void)inb(POST_PORT);
        if (read_counter() != first) ++changes;
    }
    if (changes > 0) {
        serial_puts("pit: counting\r\n");
    } else {
        serial_puts("pit: none, reads 0x");
        serial_put_hex_digits(first, 4);
        serial_puts("\r\n");
    }
    guest_reset();
}
