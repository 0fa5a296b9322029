/* Reads one line from COM1 (kvmlet's stdin) and prints it back, then resets. */
#include "guest.h"

enum { LINE_MAX = 80 };

void guest_main(void)
{
    char line[LINE_MAX + 1];
    int len = 0;

    serial_puts("ready\r\n");
    for (;;) {
        char c = serial_getc();
        if (c == '\n') break;
        if (c == '\r') continue;
        if (len < LINE_MAX) line[len++] = c;
    }
    line[len] = '\0';
    serial_puts("line: ");
    serial_puts(line);
    serial_puts("\r\n");
    guest_reset();
}
