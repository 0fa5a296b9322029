/* The guest of tools/bench/snapshot: fills FILL_BYTES of RAM from FILL_START with a pattern that
 * differs on every page (standing in for what a booted system holds: its kernel, page cache and
 * heap), writes the boot-timer port (kvmlet's timeline: boot_timer, the guest is ready), prints
 * "filled", then counts as count.c does ("count N" on COM1 for ever). A snapshot
 * taken after "filled" has those pages in its memory file: clones restored from it share them
 * through the host's page cache and load only the pages they touch, where booted VMs each fill
 * their own. Needs at least 64 MiB of RAM. */
#include "guest.h"

#define FILL_START (16ull << 20)
#define FILL_BYTES (32ull << 20)
#define PAGE_BYTES 4096ull

void guest_main(void)
{
    serial_puts("filling\r\n");
    /* One `rep stosq` per page, a value of its own: on a host that emulates the guest's kernel-mode
     * instructions (kvm-pvm) a loop of single stores takes ~50 s for 32 MiB. */
    for (uint64_t page = 0; page < FILL_BYTES / PAGE_BYTES; ++page) {
        void *to = (void *)(uintptr_t)(FILL_START + page * PAGE_BYTES);
        uint64_t count = PAGE_BYTES / 8;
        uint64_t value = (page + 1) * 0x9e3779b97f4a7c15ull;
        __asm__ volatile("rep stosq" : "+D"(to), "+c"(count) : "a"(value) : "memory");
    }
    outb(BOOT_TIMER_PORT, BOOT_TIMER_MAGIC);
    serial_puts("filled\r\n");
    for (uint64_t n = 1;; ++n) {
        serial_puts("count ");
        serial_put_dec(n);
        serial_puts("\r\n");
    }
}
