/* Batched 8250 writes (KVM's coalesced port I/O, Serial::batch_transmit): prints a polled line,
 * as Linux's boot console does (an LSR read before each byte), of SERIAL_BATCH_POLLED letters,
 * then writes a second line blind (THR writes only, no exit after them) and sleeps in `sti; hlt`.
 * With batching, the polled line costs one exit per byte; the blind line reaches the console
 * only because kvmlet drains the batched writes at its next exit (the halt watchdog's kick), so a
 * test that sees both lines in order sees nothing lost or reordered. */
#include "guest.h"
#include "idt.h"
#include "lapic.h"

enum {
    SERIAL_BATCH_POLLED = 512,
    PIC_MASTER_DATA = 0x21,
    PIC_SLAVE_DATA = 0xa1,
    PIC_MASK_ALL = 0xff,
    FIRST_INTERRUPT_VECTOR = 32,
    LAST_VECTOR = 255,
};

void on_stray_interrupt(void)
{
    lapic_write(LAPIC_EOI, 0);
}
IDT_ENTRY(stray_entry, on_stray_interrupt);

static void on_exception(const struct exception_frame *frame)
{
    serial_puts("serial-batch: FAIL exception ");
    serial_put_dec(frame->vector);
    serial_puts("\r\n");
    guest_reset();
}

void guest_main(void)
{
    /* Everything that exits comes first: only the blind line below is left in the ring. */
    outb(PIC_MASTER_DATA, PIC_MASK_ALL);
    outb(PIC_SLAVE_DATA, PIC_MASK_ALL);
    idt_catch_exceptions(on_exception, 0);
    for (uint32_t v = FIRST_INTERRUPT_VECTOR; v <= LAST_VECTOR; ++v) idt_set_gate((uint8_t)v, stray_entry);
    idt_load();

    serial_puts("serial-batch: polled ");
    for (int i = 0; i < SERIAL_BATCH_POLLED; ++i) serial_putc((char)('a' + i % 26));
    serial_puts(" end\r\n");
    for (const char *p = "serial-batch: blind end\r\n"; *p; ++p) outb(COM1_BASE + UART_THR, (uint8_t)*p);
    for (;;) __asm__ volatile("sti; hlt; cli" ::: "memory");
}
