/* SMP bring-up. The BSP prints "cpu <APIC ID> up (bsp)", wakes every other vCPU with
 * INIT-SIPI-SIPI sent to "all excluding self", and each AP prints "cpu <APIC ID> up" from
 * real mode (smp_trampoline.S) and halts. The guest does not know how many vCPUs exist, so
 * the BSP waits until no AP has reported for QUIET_MS (measured with the LAPIC timer, which
 * runs in real time even where guest instructions are emulated), at most MAX_WAIT_MS in all,
 * then prints "cpus up: <BSP + APs>" and resets. */
#include "guest.h"
#include "lapic.h"

extern volatile uint32_t ap_lock;  /* smp_trampoline.S */
extern volatile uint32_t ap_count;
extern char ap_trampoline[];

enum { INIT_TO_SIPI_MS = 10, SIPI_TO_SIPI_MS = 1, QUIET_MS = 250, MAX_WAIT_MS = 10000 };

static void console_lock(void)
{
    while (__atomic_exchange_n(&ap_lock, 1, __ATOMIC_ACQUIRE) != 0) {
    }
}

static void console_unlock(void)
{
    __atomic_store_n(&ap_lock, 0, __ATOMIC_RELEASE);
}


/* Reports the BSP, checking that CPUID and the LAPIC agree on its APIC ID. */
static void report_bsp(void)
{
    uint32_t regs[4];
    cpuid(1, 0, regs);
    uint32_t cpuid_id = regs[1] >> 24;
    uint32_t lapic_id = lapic_read(LAPIC_ID) >> 24;

    serial_puts("cpu ");
    serial_put_dec(cpuid_id);
    serial_puts(" up (bsp)\r\n");
    if (lapic_id != cpuid_id) {
        serial_puts("apic id mismatch: lapic ");
        serial_put_dec(lapic_id);
        serial_puts("\r\n");
    }
    cpuid(0, 0, regs);
    if (regs[0] >= 0xb) {
        cpuid(0xb, 0, regs);
        if (regs[3] != cpuid_id) {
            serial_puts("apic id mismatch: x2apic ");
            serial_put_dec(regs[3]);
            serial_puts("\r\n");
        }
    }
}

/* Returns once no AP has reported for QUIET_MS, or after MAX_WAIT_MS. */
static void wait_for_aps(void)
{
    uint32_t seen = ap_count;
    uint32_t last_change = lapic_timer_elapsed_ms();
    for (;;) {
        uint32_t now = lapic_timer_elapsed_ms();
        uint32_t count = ap_count;
        if (count != seen) {
            seen = count;
            last_change = now;
        } else if (now - last_change >= QUIET_MS || now >= MAX_WAIT_MS) {
            return;
        }
    }
}

void guest_main(void)
{
    report_bsp();

    lapic_timer_start();
    if (lapic_read(LAPIC_TIMER_CURRENT) == 0) {
        serial_puts("smp: the LAPIC timer does not count\r\n");
        guest_reset();
    }

    uint32_t sipi_vector = (uint32_t)((uintptr_t)ap_trampoline >> 12);
    lapic_send_to_others(ICR_DELIVERY_INIT);
    lapic_delay_ms(INIT_TO_SIPI_MS);
    lapic_send_to_others(ICR_DELIVERY_STARTUP | sipi_vector);
    lapic_delay_ms(SIPI_TO_SIPI_MS);
    lapic_send_to_others(ICR_DELIVERY_STARTUP | sipi_vector);

    wait_for_aps();
    console_lock();
    serial_puts("cpus up: ");
    serial_put_dec(1 + ap_count);
    serial_puts("\r\n");
    console_unlock();
    guest_reset();
}
