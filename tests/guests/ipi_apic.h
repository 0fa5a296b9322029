/* The local APIC as the ipi guest uses it: in xAPIC mode (MMIO at 0xfee00000, through lapic.h) or,
 * built with IPI_X2APIC=1, in x2APIC mode (Intel SDM vol. 3A, 10.12: register at xAPIC offset r
 * is MSR 0x800 + r / 16, the ICR one 64-bit MSR), and its timer as a clock in both. */
#ifndef KVMLET_TESTS_GUESTS_IPI_APIC_H
#define KVMLET_TESTS_GUESTS_IPI_APIC_H

#include <stdint.h>

#include "lapic.h"

#ifndef IPI_X2APIC
#define IPI_X2APIC 0
#endif

/* Registers and ICR bits beyond lapic.h's (SDM vol. 3A, table 10-1, figure 10-12). */
enum {
    LAPIC_LDR = 0xd0,
    LAPIC_DFR = 0xe0,
    LAPIC_IRR = 0x200, /* 8 registers 16 bytes apart, 32 vectors each */
    ICR_LOGICAL = 1 << 11,
};

enum { TICKS_PER_MS = 62500 }; /* the clock: KVM's 1 GHz APIC bus clock divided by 16 */

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t low, high;
    __asm__ volatile("rdmsr" : "=a"(low), "=d"(high) : "c"(msr));
    return (uint64_t)high << 32 | low;
}

static inline void wrmsr(uint32_t msr, uint64_t value)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)) : "memory");
}

/* Linux's smp_mb() on x86-64: a locked add orders every earlier load and store. */
static inline void full_barrier(void)
{
    __asm__ volatile("lock addl $0, -4(%%rsp)" : : : "memory", "cc");
}

/* Switches this CPU's local APIC from xAPIC to x2APIC mode, if built for it. */
void apic_mode_enter(void);
uint32_t apic_read(uint32_t reg);
void apic_write(uint32_t reg, uint32_t value);
uint32_t apic_id(void);
/* Writes the ICR: `dest` is an APIC ID, a logical destination, or 0 with a shorthand. */
void apic_send(uint32_t dest, uint32_t command);
/* 1 if `vector` is pending in the IRR. */
int apic_irr_pending(uint8_t vector);

/* Enables the local APIC and starts its timer as a free-running clock (masked, divide by 16), as
 * lapic.c's lapic_timer_start() does for the xAPIC only, but periodic: a one-shot count stops at 0
 * after ~68 s, and every bounded wait begun after that would never end. */
void clock_start(void);
uint32_t clock_ticks(void); /* wraps after ~68 s */
uint32_t ticks_to_us(uint64_t ticks);
void delay_ms(uint32_t ms);

#endif
