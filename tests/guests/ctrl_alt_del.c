/* The keyboard guest of the Ctrl-Alt-Del test (lifecycle_driver ctrl-alt-del). It sets up the
 * i8042 and its keyboard the way Linux's i8042 and atkbd drivers do: controller self-test, the
 * configuration byte with translation to scan code set 1, keyboard reset, identify and scanning
 * on (polled, the keyboard interrupt off), checking each reply. It then routes IRQ 1 through the
 * IOAPIC (pin 1, edge, active high; the 8259 PICs masked) to a handler that reads one byte per
 * interrupt, as Linux's does, turns the keyboard interrupt on, prints "keyboard ready" and waits
 * for Ctrl, Alt and Delete pressed (set 1: 1d 38 e0 53) and released (e0 d3 b8 9d). It prints
 * what it received, "ctrl-alt-del", and resets through the i8042: kvmlet's run ends with a reset.
 * Any unexpected reply prints "FAIL <what>" and halts. */
#include "guest.h"
#include "idt.h"
#include "lapic.h"

#define IOAPIC_BASE 0xfec00000ul

enum {
    /* i8042 (IBM PC/AT Technical Reference, "Keyboard Controller") */
    I8042_DATA = 0x60,
    I8042_STATUS = 0x64,
    STATUS_OUTPUT_FULL = 0x01,
    CMD_READ_CONFIG = 0x20,
    CMD_WRITE_CONFIG = 0x60,
    CMD_SELF_TEST = 0xaa,
    CMD_ENABLE_KEYBOARD = 0xae,
    SELF_TEST_PASSED = 0x55,
    CONFIG_KEYBOARD_INTERRUPT = 0x01,
    CONFIG_SYSTEM_FLAG = 0x04,
    CONFIG_TRANSLATE = 0x40,
    /* PS/2 keyboard */
    KBD_RESET = 0xff,
    KBD_IDENTIFY = 0xf2,
    KBD_ENABLE_SCANNING = 0xf4,
    KBD_ACK = 0xfa,
    KBD_SELF_TEST_PASSED = 0xaa,
    /* 8259 PICs: interrupt mask registers */
    PIC1_DATA = 0x21,
    PIC2_DATA = 0xa1,
    /* IOAPIC (82093AA datasheet §3.2) */
    IOAPIC_REGISTER_SELECT = 0x00,
    IOAPIC_WINDOW = 0x10,
    IOAPIC_REDIRECTION_TABLE = 0x10, /* pin n: 0x10 + 2n (low dword), 0x11 + 2n (high) */
    KEYBOARD_PIN = 1,
    /* local APIC */
    LAPIC_SVR_ENABLE = 1 << 8,
    LAPIC_LVT_MASKED = 1 << 16,
    VECTOR_KEYBOARD = 0x41,
    VECTOR_SPURIOUS = 0xff,
    REPLY_TIMEOUT_MS = 2000,
    MAX_BYTES = 64,
};

static const uint8_t pressed[] = {0x1d, 0x38, 0xe0, 0x53};  /* Ctrl, Alt, Delete: set 1 makes */
static const uint8_t released[] = {0xe0, 0xd3, 0xb8, 0x9d}; /* Delete, Alt, Ctrl: set 1 breaks */

static volatile uint8_t received[MAX_BYTES];
static volatile uint32_t received_count, interrupts;

__attribute__((noreturn)) static void fail(const char *what)
{
    serial_puts("FAIL ");
    serial_puts(what);
    serial_puts("\r\n");
    guest_halt();
}

/* One byte per interrupt, as Linux's i8042_interrupt() reads it. */
void keyboard_handler(void)
{
    interrupts++;
    if (inb(I8042_STATUS) & STATUS_OUTPUT_FULL) {
        uint8_t byte = inb(I8042_DATA);
        if (received_count < MAX_BYTES) received[received_count++] = byte;
    }
    lapic_write(LAPIC_EOI, 0);
}

void spurious_handler(void) {} /* SDM 11.9: no EOI for the spurious vector */

IDT_ENTRY(keyboard_entry, keyboard_handler);
IDT_ENTRY(spurious_entry, spurious_handler);

static int read_polled(uint8_t *byte)
{
    uint32_t start = lapic_timer_elapsed_ms();
    while (!(inb(I8042_STATUS) & STATUS_OUTPUT_FULL)) {
        if (lapic_timer_elapsed_ms() - start > REPLY_TIMEOUT_MS) return 0;
    }
    *byte = inb(I8042_DATA);
    return 1;
}

static void expect(uint8_t want, const char *what)
{
    uint8_t byte;
    if (!read_polled(&byte)) fail(what);
    if (byte != want) {
        serial_puts("FAIL ");
        serial_puts(what);
        serial_puts(": got ");
        serial_put_hex_digits(byte, 2);
        serial_puts("\r\n");
        guest_halt();
    }
}

static void write_config(uint8_t config)
{
    outb(I8042_STATUS, CMD_WRITE_CONFIG);
    outb(I8042_DATA, config);
}

static void ioapic_write(uint32_t reg, uint32_t value)
{
    *(volatile uint32_t *)(IOAPIC_BASE + IOAPIC_REGISTER_SELECT) = reg;
    *(volatile uint32_t *)(IOAPIC_BASE + IOAPIC_WINDOW) = value;
}

static void set_up_controller_and_keyboard(void)
{
    for (int i = 0; i < 32 && (inb(I8042_STATUS) & STATUS_OUTPUT_FULL); ++i) (void)inb(I8042_DATA);
    write_config(CONFIG_SYSTEM_FLAG | CONFIG_TRANSLATE); /* keyboard interrupt off: polled */
    outb(I8042_STATUS, CMD_SELF_TEST);
    expect(SELF_TEST_PASSED, "controller self-test");
    outb(I8042_STATUS, CMD_READ_CONFIG);
    expect(CONFIG_SYSTEM_FLAG | CONFIG_TRANSLATE, "configuration byte");
    outb(I8042_STATUS, CMD_ENABLE_KEYBOARD);
    outb(I8042_DATA, KBD_RESET);
    expect(KBD_ACK, "keyboard reset ACK");
    expect(KBD_SELF_TEST_PASSED, "keyboard self-test");
    outb(I8042_DATA, KBD_IDENTIFY);
    expect(KBD_ACK, "identify ACK");
    expect(0xab, "keyboard ID byte 1");
    expect(0x41, "keyboard ID byte 2 (0x83 translated)");
    outb(I8042_DATA, KBD_ENABLE_SCANNING);
    expect(KBD_ACK, "scanning ACK");
}

static void set_up_interrupts(void)
{
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);
    idt_set_gate(VECTOR_KEYBOARD, keyboard_entry);
    idt_set_gate(VECTOR_SPURIOUS, spurious_entry);
    idt_load();
    lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | VECTOR_SPURIOUS);
    lapic_write(LAPIC_LVT_LINT0, LAPIC_LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT1, LAPIC_LVT_MASKED);
    /* Pin 1 to VECTOR_KEYBOARD on APIC ID 0: fixed, physical, edge, active high, unmasked. */
    ioapic_write(IOAPIC_REDIRECTION_TABLE + 2u * KEYBOARD_PIN + 1, 0);
    ioapic_write(IOAPIC_REDIRECTION_TABLE + 2u * KEYBOARD_PIN, VECTOR_KEYBOARD);
    write_config(CONFIG_SYSTEM_FLAG | CONFIG_TRANSLATE | CONFIG_KEYBOARD_INTERRUPT);
    __asm__ volatile("sti" ::: "memory");
}

static int has_sequence(const uint8_t *want, uint32_t length)
{
    uint32_t matched = 0;
    for (uint32_t i = 0; i < received_count && matched < length; ++i)
        if (received[i] == want[matched]) ++matched;
    return matched == length;
}

void guest_main(void)
{
    lapic_timer_start();
    set_up_controller_and_keyboard();
    set_up_interrupts();
    serial_puts("keyboard ready\r\n");
    while (!has_sequence(pressed, sizeof pressed)) __asm__ volatile("" ::: "memory");
    uint32_t start = lapic_timer_elapsed_ms();
    while (received_count < sizeof pressed + sizeof released && lapic_timer_elapsed_ms() - start < REPLY_TIMEOUT_MS)
        __asm__ volatile("" ::: "memory");
    __asm__ volatile("cli" ::: "memory");
    serial_puts("keys:");
    for (uint32_t i = 0; i < received_count; ++i) {
        serial_putc(' ');
        serial_put_hex_digits(received[i], 2);
    }
    serial_puts("\r\ninterrupts: ");
    serial_put_dec(interrupts);
    serial_puts("\r\n");
    if (received_count != sizeof pressed + sizeof released) fail("not exactly Ctrl-Alt-Del pressed and released");
    for (uint32_t i = 0; i < sizeof released; ++i)
        if (received[sizeof pressed + i] != released[i]) fail("not exactly Ctrl-Alt-Del pressed and released");
    serial_puts("ctrl-alt-del\r\n");
    guest_reset();
}
