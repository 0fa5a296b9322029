#include "lapic.h"

enum {
    SVR_APIC_ENABLE = 1 << 8,
    SPURIOUS_VECTOR = 0xff,
    LVT_MASKED = 1 << 16,
    TIMER_VECTOR = 0x20,
    TIMER_DIVIDE_BY_16 = 0x3,
    TIMER_TICKS_PER_MS = 62500, /* 1 GHz / 16 */
};

void lapic_timer_start(void)
{
    lapic_write(LAPIC_SVR, SVR_APIC_ENABLE | SPURIOUS_VECTOR);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | TIMER_VECTOR);
    lapic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    lapic_write(LAPIC_TIMER_INITIAL, 0xffffffffu);
}

uint32_t lapic_timer_elapsed_ms(void)
{
    return (0xffffffffu - lapic_read(LAPIC_TIMER_CURRENT)) / TIMER_TICKS_PER_MS;
}
