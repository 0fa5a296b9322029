/* The local APIC as the ipi guest uses it (see ipi_apic.h). */
#include "ipi_apic.h"

enum {
    MSR_APIC_BASE = 0x1b,
    APIC_BASE_ENABLE = 1 << 11,
    APIC_BASE_X2APIC = 1 << 10,
    MSR_X2APIC_BASE = 0x800,
    MSR_X2APIC_ICR = 0x830,
    TIMER_VECTOR = 0x20, /* masked: never raised */
    ICR_IDLE_POLLS = 1000,
};

void apic_mode_enter(void)
{
    /* xAPIC enabled -> x2APIC is a legal transition (SDM 10.12.5, figure 10-27). */
    if (IPI_X2APIC) wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
}

uint32_t apic_read(uint32_t reg)
{
    if (IPI_X2APIC) return (uint32_t)rdmsr(MSR_X2APIC_BASE + reg / 16);
    return lapic_read(reg);
}

void apic_write(uint32_t reg, uint32_t value)
{
    if (IPI_X2APIC) wrmsr(MSR_X2APIC_BASE + reg / 16, value);
    else lapic_write(reg, value);
}

uint32_t apic_id(void)
{
    return IPI_X2APIC ? apic_read(LAPIC_ID) : apic_read(LAPIC_ID) >> 24;
}

/* x2APIC ICR writes are not serializing (SDM 10.12.3): what was posted before must be visible
 * first, as Linux's weak_wrmsr_fence() makes it. Linux waits for an idle xAPIC ICR; so do we. */
void apic_send(uint32_t dest, uint32_t command)
{
    full_barrier();
    if (IPI_X2APIC) {
        wrmsr(MSR_X2APIC_ICR, (uint64_t)dest << 32 | command);
        return;
    }
    for (int i = 0; i < ICR_IDLE_POLLS && (apic_read(LAPIC_ICR_LOW) & ICR_SEND_PENDING); ++i) {
    }
    apic_write(LAPIC_ICR_HIGH, dest << 24);
    apic_write(LAPIC_ICR_LOW, command);
}

int apic_irr_pending(uint8_t vector)
{
    return (int)((apic_read(LAPIC_IRR + vector / 32 * 16) >> (vector % 32)) & 1);
}

void clock_start(void)
{
    apic_write(LAPIC_SVR, SVR_APIC_ENABLE | SPURIOUS_VECTOR);
    apic_write(LAPIC_LVT_TIMER, LVT_MASKED | LVT_TIMER_PERIODIC | TIMER_VECTOR);
    apic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    apic_write(LAPIC_TIMER_INITIAL, 0xffffffffu);
}

uint32_t clock_ticks(void)
{
    return 0xffffffffu - apic_read(LAPIC_TIMER_CURRENT);
}

uint32_t ticks_to_us(uint64_t ticks)
{
    return (uint32_t)(ticks * 1000 / TICKS_PER_MS);
}

void delay_ms(uint32_t ms)
{
    uint32_t start = clock_ticks();
    while (clock_ticks() - start < ms * TICKS_PER_MS) {
    }
}
