/* The guest of tools/bench/density: prints "idle: up" on COM1 (its first byte is the VM's first
 * output), then sleeps in `sti; hlt` until kvmlet is stopped (SIGTERM), using no CPU meanwhile.
 *
 * Interrupts stay on so that kvmlet's halt watchdog does not end the machine ("halted" means every
 * vCPU in `hlt` with interrupts off), but nothing should interrupt: both 8259s are masked here,
 * the IOAPIC starts with every pin masked, and the local APIC timer is never armed. A stray
 * interrupt anyway is acknowledged, counted and slept through; an exception prints where and
 * resets. */
#include "guest.h"
#include "idt.h"
#include "lapic.h"

/* The two 8259 interrupt controllers' mask registers (OCW1). */
enum {
    PIC_MASTER_DATA = 0x21,
    PIC_SLAVE_DATA = 0xa1,
    PIC_MASK_ALL = 0xff,
    FIRST_INTERRUPT_VECTOR = 32,
    LAST_VECTOR = 255,
};

static volatile uint64_t stray_interrupts;

void on_stray_interrupt(void)
{
    ++stray_interrupts;
    lapic_write(LAPIC_EOI, 0);
}
IDT_ENTRY(stray_entry, on_stray_interrupt);

static void on_exception(const struct exception_frame *frame)
{
    serial_puts("idle: FAIL exception ");
    serial_put_dec(frame->vector);
    serial_puts(" at ");
    serial_put_hex(frame->cpu.rip);
    serial_puts("\r\n");
    guest_reset();
}

void guest_main(void)
{
    serial_puts("idle: up\r\n");
    outb(PIC_MASTER_DATA, PIC_MASK_ALL);
    outb(PIC_SLAVE_DATA, PIC_MASK_ALL);
    idt_catch_exceptions(on_exception, 0);
    for (uint32_t v = FIRST_INTERRUPT_VECTOR; v <= LAST_VECTOR; ++v)
        idt_set_gate((uint8_t)v, stray_entry);
    idt_load();
    for (;;)
        __asm__ volatile("sti; hlt; cli" ::: "memory");
}
