/* The local APIC as tiny guests use it: its registers (Intel SDM vol. 3A, 11.4.1, table 11-1),
 * and its timer as a clock. Waits in tiny guests are bounded in real time, not in loop
 * iterations: this host emulates each guest instruction (~1.5 µs) where other hosts run the same
 * loop a thousand times faster, but the LAPIC timer runs in real time on both. */
#ifndef KVMLET_TESTS_GUESTS_LAPIC_H
#define KVMLET_TESTS_GUESTS_LAPIC_H

#include <stdint.h>

#define LAPIC_BASE 0xfee00000ul
enum {
    LAPIC_ID = 0x20,
    LAPIC_EOI = 0xb0,
    LAPIC_SVR = 0xf0,
    LAPIC_ICR_LOW = 0x300,
    LAPIC_ICR_HIGH = 0x310,
    LAPIC_LVT_TIMER = 0x320,
    LAPIC_LVT_LINT0 = 0x350,
    LAPIC_LVT_LINT1 = 0x360,
    LAPIC_TIMER_INITIAL = 0x380,
    LAPIC_TIMER_CURRENT = 0x390,
    LAPIC_TIMER_DIVIDE = 0x3e0,
};

/* The spurious-interrupt vector register, the timer's LVT entry and divide configuration (SDM vol.
 * 3A, 11.5.1, 11.5.4, 11.9), and the timer's rate under KVM: its 1 GHz bus clock divided by 16. */
enum {
    SVR_APIC_ENABLE = 1 << 8,
    SPURIOUS_VECTOR = 0xff,
    LVT_MASKED = 1 << 16,
    LVT_TIMER_PERIODIC = 1 << 17,
    TIMER_DIVIDE_BY_16 = 0x3,
    TIMER_TICKS_PER_MS = 62500,
};

/* Interrupt Command Register bits (SDM vol. 3A, figure 11-12). */
enum {
    ICR_DELIVERY_INIT = 5 << 8,
    ICR_DELIVERY_STARTUP = 6 << 8,
    ICR_SEND_PENDING = 1 << 12,
    ICR_LEVEL_ASSERT = 1 << 14,
    ICR_ALL_EXCLUDING_SELF = 3 << 18,
};

static inline uint32_t lapic_read(uint32_t reg)
{
    return *(volatile uint32_t *)(LAPIC_BASE + reg);
}

static inline void lapic_write(uint32_t reg, uint32_t value)
{
    *(volatile uint32_t *)(LAPIC_BASE + reg) = value;
}

/* Enables the local APIC and starts its timer as a free-running one-shot countdown (masked: no
 * interrupt), divided by 16 from KVM's 1 GHz APIC bus clock (SDM 11.5.4). */
void lapic_timer_start(void);
/* Milliseconds since lapic_timer_start(); a timer that ran out (after ~68 s) reads as ~68 s. */
uint32_t lapic_timer_elapsed_ms(void);
/* Waits `ms` milliseconds of the timer's clock (lapic_timer_start() first). */
void lapic_delay_ms(uint32_t ms);
/* Sends `command` (ICR delivery mode and vector) to every other CPU (xAPIC mode) and waits, a
 * bounded while, for the ICR to report it sent. */
void lapic_send_to_others(uint32_t command);

#endif
