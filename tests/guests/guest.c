/* Freestanding helpers shared by the tiny guests (see guest.h). */
#include "guest.h"

/* Bounds the wait for THR empty, so a UART that never reports it cannot hang the guest:
 * the byte is written anyway and the test's output check shows what went wrong. */
enum { THR_POLL_LIMIT = 100000 };

void serial_putc(char c)
{
    for (int i = 0; i < THR_POLL_LIMIT; ++i) {
        if (inb(COM1_BASE + UART_LSR) & UART_LSR_THR_EMPTY) break;
    }
    outb(COM1_BASE + UART_THR, (uint8_t)c);
}

void serial_puts(const char *s)
{
    while (*s) serial_putc(*s++);
}

int format_dec(char *out, uint64_t value)
{
    char digits[20];
    int n = 0, length = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (n > 0) out[length++] = digits[--n];
    return length;
}

void serial_put_dec(uint64_t value)
{
    char text[20];
    int length = format_dec(text, value);
    for (int i = 0; i < length; ++i) serial_putc(text[i]);
}

void serial_put_hex_digits(uint64_t value, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) serial_putc(hex[(value >> shift) & 0xf]);
}

void serial_put_hex(uint64_t value)
{
    serial_puts("0x");
    serial_put_hex_digits(value, 16);
}

char serial_getc(void)
{
    while (!(inb(COM1_BASE + UART_LSR) & UART_LSR_DATA_READY)) {
    }
    return (char)inb(COM1_BASE + UART_RBR);
}

void guest_halt(void)
{
    for (;;) __asm__ volatile("cli; hlt");
}

void guest_reset(void)
{
    outb(I8042_COMMAND, I8042_CMD_RESET);
    guest_halt();
}
