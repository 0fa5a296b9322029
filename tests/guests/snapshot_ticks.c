/* The guest of the 4-vCPU snapshot test (tests/api/snapshot.py): every vCPU runs its local APIC
 * timer in periodic mode and sleeps in `sti; hlt` between ticks; for each tick it takes, it prints
 * "cpu <APIC ID> tick <n>" on COM1 (n = 1, 2, 3, ... per CPU), under a lock so that lines do not
 * mix. Interrupts are in flight all the time, so a snapshot catches some pending or being served;
 * after a restore each CPU must go on with the next n: none repeated, none skipped, and all four
 * ticking. The BSP starts the APs as hostile.c does (INIT-SIPI-SIPI to ipi_trampoline). */
#include "guest.h"
#include "idt.h"
#include "ipi.h"
#include "lapic.h"

enum {
    INIT_TO_SIPI_MS = 10,
    SIPI_TO_SIPI_MS = 1,
    TICK_VECTOR = 0x40,
    TICK_MS = 50,
};

static volatile uint64_t ticks[IPI_MAX_CPUS];
static volatile uint32_t console_lock;

static uint32_t apic_id(void)
{
    return lapic_read(LAPIC_ID) >> 24;
}

void tick(void)
{
    uint32_t id = apic_id();
    if (id < IPI_MAX_CPUS) ticks[id]++;
    lapic_write(LAPIC_EOI, 0);
}
IDT_ENTRY(tick_entry, tick);

static void print_tick(uint32_t id, uint64_t n)
{
    while (__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE) != 0) {
    }
    serial_puts("cpu ");
    serial_put_dec(id);
    serial_puts(" tick ");
    serial_put_dec(n);
    serial_puts("\r\n");
    __atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE);
}

__attribute__((noreturn)) static void tick_forever(uint32_t id)
{
    idt_load();
    lapic_write(LAPIC_SVR, SVR_APIC_ENABLE | SPURIOUS_VECTOR);
    lapic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    lapic_write(LAPIC_LVT_TIMER, LVT_TIMER_PERIODIC | TICK_VECTOR);
    lapic_write(LAPIC_TIMER_INITIAL, TICK_MS * TIMER_TICKS_PER_MS);
    for (uint64_t printed = 0;;) {
        __asm__ volatile("sti; hlt; cli" ::: "memory");
        while (printed < ticks[id]) print_tick(id, ++printed);
    }
}

void ap_main(uint32_t id)
{
    if (id >= IPI_MAX_CPUS) guest_halt();
    tick_forever(id);
}

void guest_main(void)
{
    idt_set_gate(TICK_VECTOR, tick_entry);
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    ipi_ap_cr3 = (uint32_t)cr3; /* kvmlet's boot page tables are below 4 GiB */
    serial_puts("ticking\r\n");
    lapic_timer_start();
    uint32_t sipi = ICR_DELIVERY_STARTUP | (uint32_t)((uintptr_t)ipi_trampoline >> 12);
    lapic_send_to_others(ICR_DELIVERY_INIT);
    lapic_delay_ms(INIT_TO_SIPI_MS);
    lapic_send_to_others(sipi);
    lapic_delay_ms(SIPI_TO_SIPI_MS);
    lapic_send_to_others(sipi);
    tick_forever(apic_id());
}
