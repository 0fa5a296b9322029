#include "lapic.h"

enum { TIMER_VECTOR = 0x20 };

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

void lapic_delay_ms(uint32_t ms)
{
    uint32_t start = lapic_timer_elapsed_ms();
    while (lapic_timer_elapsed_ms() - start < ms) {
    }
}

void lapic_send_to_others(uint32_t command)
{
    lapic_write(LAPIC_ICR_HIGH, 0);
    lapic_write(LAPIC_ICR_LOW, ICR_ALL_EXCLUDING_SELF | ICR_LEVEL_ASSERT | command);
    for (int i = 0; i < 1000 && (lapic_read(LAPIC_ICR_LOW) & ICR_SEND_PENDING); ++i) {
    }
}
