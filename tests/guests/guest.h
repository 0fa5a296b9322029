/* Freestanding helpers shared by the tiny guests: port and memory-mapped I/O, COM1, reset, halt.
 * Plain integer code only: kvmlet's development host emulates guest CPL0 code instruction by
 * instruction and cannot emulate SSE, popcnt, int3 and friends (see /work/shared/HOST.md). */
#ifndef KVMLET_TESTS_GUESTS_GUEST_H
#define KVMLET_TESTS_GUESTS_GUEST_H

#include <stdint.h>

/* Ports of the devices kvmlet gives every guest. */
enum {
    COM1_BASE = 0x3f8,
    UART_THR = 0,            /* transmit holding register (write) */
    UART_RBR = 0,            /* receive buffer register (read) */
    UART_LSR = 5,            /* line status register */
    UART_LSR_DATA_READY = 0x01,
    UART_LSR_THR_EMPTY = 0x20,
    I8042_COMMAND = 0x64,
    I8042_CMD_RESET = 0xfe,  /* pulse the CPU reset line: kvmlet exits with status 0 */
    BOOT_TIMER_PORT = 0x3f0, /* Firecracker's boot-timer port */
    BOOT_TIMER_MAGIC = 123,
};

static inline void outb(uint16_t port, uint8_t value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

/* Memory-mapped registers; volatile, so each access happens once, in program order. */
static inline uint8_t mmio_read8(uintptr_t address) { return *(volatile uint8_t *)address; }
static inline uint16_t mmio_read16(uintptr_t address) { return *(volatile uint16_t *)address; }
static inline uint32_t mmio_read32(uintptr_t address) { return *(volatile uint32_t *)address; }
static inline void mmio_write8(uintptr_t address, uint8_t value) { *(volatile uint8_t *)address = value; }
static inline void mmio_write16(uintptr_t address, uint16_t value) { *(volatile uint16_t *)address = value; }
static inline void mmio_write32(uintptr_t address, uint32_t value) { *(volatile uint32_t *)address = value; }

static inline void cpuid(uint32_t leaf, uint32_t subleaf, uint32_t regs[4])
{
    __asm__ volatile("cpuid"
                     : "=a"(regs[0]), "=b"(regs[1]), "=c"(regs[2]), "=d"(regs[3])
                     : "a"(leaf), "c"(subleaf));
}

void serial_putc(char c);
void serial_puts(const char *s);
void serial_put_dec(uint64_t value);
/* Writes value in decimal to out (at most 20 characters, no NUL); returns how many. */
int format_dec(char *out, uint64_t value);
void serial_put_hex(uint64_t value);
/* The low `digits` hex digits of `value`, zero-padded, without "0x". */
void serial_put_hex_digits(uint64_t value, int digits);
/* Blocks until COM1 has a byte. */
char serial_getc(void);

/* Resets the machine through the i8042; never returns (if the reset is ignored, the vCPU
 * halts with interrupts disabled). */
__attribute__((noreturn)) void guest_reset(void);
/* cli; hlt forever. */
__attribute__((noreturn)) void guest_halt(void);

/* Each guest defines this; start.S calls it on a stack inside the image. */
void guest_main(void);

#endif
