/* A tenant of tools/tenants: one workload, chosen when the guest is built (TENANT_ROLE), run until
 * kvmlet is stopped. Victims measure themselves; aggressors only load the host.
 *
 *   victim_disk    a 4 KiB read at a random 4 KiB-aligned offset of virtio-mmio disk 0 every 2 ms
 *                  (queue depth 1, polled); each read is timed from the request to the used
 *                  entry.
 *   victim_cpu     a fixed chunk of integer work every 10 ms, timed: a chunk that took longer
 *                  than the others lost its vCPU to someone else.
 * Victims are paced, and sleep in `hlt` until their local APIC timer wakes them for the next
 * sample: a latency-sensitive tenant that uses little, so that limits meant for heavy tenants
 * (cgroups' CPU quota, rate limiters) do not hold it back; tools/tenants gives it the same limits
 * as everyone else.
 *   aggressor_disk 64 KiB reads of disk 0 one after another, wrapping at its end.
 *   aggressor_cpu  a loop that never stops.
 *   victim_net     every 2 ms a 60-byte frame (EtherType 0x88b5, broadcast, a sequence number) on
 *                  virtio-mmio net device 0, timed until the echo with that number comes back
 *                  (tools/tenants answers on the TAP); an echo that does not come in 1 s counts
 *                  as 1 s.
 *   aggressor_net  1514-byte frames (EtherType 0x88b6, broadcast) back to back on net device 0.
 *   aggressor_memory
 *                  `rep stosq` over MEMORY_BYTES of RAM from MEMORY_START, again and again (the
 *                  guest needs at least MEMORY_START + MEMORY_BYTES of RAM: tools/tenants gives
 *                  every tenant 128 MiB).
 *
 * Console lines (tools/tenants reads them):
 *   tenant: tsc_khz=K          the TSC frequency (CPUID 0x40000010, or measured against the local
 *                              APIC timer when kvmlet does not give the leaf); victims only
 *   tenant: ready ROLE         the workload starts now
 *   tenant: hist n=N I:C ...   victims, every 128 (disk, net) or 32 (cpu) samples: C samples fell in bucket I
 * of the log-linear histogram below (only buckets with a count are listed) tenant: FAIL WHAT          the
 * workload could not start or a request failed; then a reset
 *
 * Histogram bucket of a duration of T TSC cycles: with m the index of T's highest set bit,
 * buckets below 8 are T itself, otherwise I = 8 * (m - 2) + ((T >> (m - 3)) & 7): eight buckets
 * per doubling, each 1/8 of its octave wide (at most 12.5% between a bucket's bounds). */
#include "guest.h"
#include "idt.h"
#include "lapic.h"
#include "virtio.h"

#ifndef TENANT_ROLE
#error "build with -DTENANT_ROLE=<role number> (tests/guests/CMakeLists.txt)"
#endif

enum {
    VICTIM_DISK = 1,
    VICTIM_CPU = 2,
    AGGRESSOR_DISK = 3,
    AGGRESSOR_CPU = 4,
    AGGRESSOR_MEMORY = 5,
    VICTIM_NET = 6,
    AGGRESSOR_NET = 7,

    SECTOR = VIRTIO_BLK_SECTOR_SIZE,
    VICTIM_READ = 4096,
    AGGRESSOR_READ = 65536,
    DISK_BATCH = 128, /* victim samples per histogram line: about 4 lines a second */
    CPU_BATCH = 32,
    BUCKETS = 8 * 62, /* covers every 64-bit duration */
    CPU_CHUNK = 1000, /* loop iterations per victim_cpu sample (~1.5 ms where CPL0 is emulated) */
    DISK_PERIOD_US = 2000,
    CPU_PERIOD_US = 10000,

    WAKE_VECTOR = 0x40,
    /* The local APIC timer's ticks per µs, rounded down: a wake-up is at most 1% early. */
    TIMER_TICKS_PER_US = TIMER_TICKS_PER_MS / 1000,
};

/* virtio 1.2 §5.1: the net device, its queues, the MAC feature; the 12-byte header of VERSION_1. */
enum {
    VIRTIO_NET_DEVICE_ID = 1,
    NET_RX = 0,
    NET_TX = 1,
    NET_HEADER = 12,
    ETH_ALEN = 6,
    ETH_HEADER = 14,
    ETH_MIN_FRAME = 60,
    ETH_MAX_FRAME = 1514,
    ECHO_TYPE = 0x88b5,
    FLOOD_TYPE = 0x88b6,
    NET_PERIOD_US = 2000,
    NET_BATCH = 128,
    ECHO_TIMEOUT_US = 1000000,
};
#define VIRTIO_NET_F_MAC (1ull << 5)

#define MEMORY_START (16ull << 20)
#define MEMORY_BYTES (96ull << 20)

static struct virtq queue;
static struct virtq net_queues[2];
static uint8_t rx_frame[NET_HEADER + ETH_MAX_FRAME + 4] __attribute__((aligned(64)));
static uint8_t tx_frame[NET_HEADER + ETH_MAX_FRAME] __attribute__((aligned(64)));
static uint8_t buffer[AGGRESSOR_READ] __attribute__((aligned(4096)));
static uint32_t histogram[BUCKETS];

static void say(const char *text)
{
    serial_puts("tenant: ");
    serial_puts(text);
}

__attribute__((noreturn)) static void fail(const char *what)
{
    say("FAIL ");
    serial_puts(what);
    serial_puts("\r\n");
    guest_reset();
}

static inline uint64_t rdtsc(void)
{
    uint32_t low, high;
    __asm__ volatile("rdtsc" : "=a"(low), "=d"(high) : : "memory");
    return (uint64_t)high << 32 | low;
}

static uint32_t highest_bit(uint64_t value) /* value > 0; no lzcnt/bsr needed */
{
    uint32_t bit = 0;
    while (value >>= 1) ++bit;
    return bit;
}

static uint32_t bucket_of(uint64_t cycles)
{
    if (cycles < 8) return (uint32_t)cycles;
    uint32_t m = highest_bit(cycles);
    return 8 * (m - 2) + (uint32_t)((cycles >> (m - 3)) & 7);
}

/* CPUID 0x40000010 (kvmlet fills it when KVM knows the TSC rate), else 100 ms of the local APIC
 * timer against the TSC. */
static uint64_t tsc_khz(void)
{
    uint32_t regs[4];
    cpuid(0x40000000u, 0, regs);
    if (regs[0] >= 0x40000010u) {
        cpuid(0x40000010u, 0, regs);
        if (regs[0]) return regs[0];
    }
    lapic_timer_start();
    uint64_t start = rdtsc();
    lapic_delay_ms(100);
    return (rdtsc() - start) / 100;
}

static uint64_t cycles_per_us;
static volatile int woken;

void wake_tick(void)
{
    woken = 1;
    lapic_write(LAPIC_EOI, 0);
}
IDT_ENTRY(wake_entry, wake_tick);

/* Sleeps until the TSC reaches `*next`, then moves it one period on (never into the past: a late
 * sample is not followed by a burst to catch up). virtio.c's polling reprograms the local APIC
 * timer (masked) for its timeouts; this arms it as a one-shot interrupt each time. */
static void pace(uint64_t *next, uint32_t period_us)
{
    uint64_t now = rdtsc();
    if (*next > now) {
        uint64_t ticks = (*next - now) / cycles_per_us * TIMER_TICKS_PER_US;
        woken = 0;
        lapic_write(LAPIC_SVR, SVR_APIC_ENABLE | SPURIOUS_VECTOR);
        lapic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
        lapic_write(LAPIC_LVT_TIMER, WAKE_VECTOR);
        lapic_write(LAPIC_TIMER_INITIAL, ticks > 0xffffffffu ? 0xffffffffu : ticks ? (uint32_t)ticks : 1);
        while (!woken) __asm__ volatile("sti; hlt; cli" ::: "memory");
        now = rdtsc();
    }
    *next += period_us * cycles_per_us;
    if (*next < now) *next = now + period_us * cycles_per_us;
}

static void start_pacing(void)
{
    idt_set_gate(WAKE_VECTOR, wake_entry);
    idt_load();
}

static void record(uint64_t cycles, uint32_t batch)
{
    static uint32_t samples;
    ++histogram[bucket_of(cycles)];
    if (++samples < batch) return;
    say("hist n=");
    serial_put_dec(samples);
    for (uint32_t i = 0; i < BUCKETS; ++i) {
        if (!histogram[i]) continue;
        serial_putc(' ');
        serial_put_dec(i);
        serial_putc(':');
        serial_put_dec(histogram[i]);
        histogram[i] = 0;
    }
    serial_puts("\r\n");
    samples = 0;
}

static uint64_t open_disk(struct virtio_dev *disk)
{
    const char *error = virtio_probe(disk, virtio_mmio_window(0), VIRTIO_BLK_DEVICE_ID);
    if (!error) error = virtio_init(disk, VIRTIO_F_VERSION_1, &queue);
    if (error) fail(error);
    uint64_t sectors = virtio_config_read64(disk, VIRTIO_BLK_CONFIG_CAPACITY);
    if (sectors < AGGRESSOR_READ / SECTOR) fail("disk 0 is smaller than 64 KiB");
    return sectors;
}

static void read_disk(struct virtio_dev *disk, uint64_t sector, uint32_t len)
{
    struct virtq_buf data = {buffer, len, 1};
    uint8_t status;
    uint32_t used_len;
    const char *error = virtio_blk_request(disk, VIRTIO_BLK_T_IN, sector, &data, 1, &status, &used_len);
    if (error) fail(error);
    if (status != VIRTIO_BLK_S_OK) fail("a read did not return VIRTIO_BLK_S_OK");
}

static void open_net(struct virtio_dev *net, uint8_t mac[ETH_ALEN])
{
    const char *error = virtio_probe(net, virtio_mmio_window(0), VIRTIO_NET_DEVICE_ID);
    if (!error) error = virtio_init_queues(net, VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC, net_queues, 2);
    if (error) fail(error);
    if (!(net->driver_features & VIRTIO_NET_F_MAC)) fail("the net device has no MAC address");
    for (int i = 0; i < ETH_ALEN; ++i) mac[i] = mmio_read8(net->base + VIRTIO_MMIO_CONFIG + (uint32_t)i);
}

/* A frame of `len` bytes (header excluded) to the broadcast address from `mac`, of `type`, with
 * `seq` in its first payload bytes; sent, and back from the device, before this returns. */
static void send_frame(struct virtio_dev *net, const uint8_t mac[ETH_ALEN], uint16_t type, uint64_t seq,
                       uint32_t len)
{
    uint8_t *frame = tx_frame + NET_HEADER;
    for (int i = 0; i < NET_HEADER; ++i) tx_frame[i] = 0;
    for (int i = 0; i < ETH_ALEN; ++i) {
        frame[i] = 0xff;
        frame[ETH_ALEN + i] = mac[i];
    }
    frame[12] = (uint8_t)(type >> 8);
    frame[13] = (uint8_t)type;
    for (int i = 0; i < 8; ++i) frame[ETH_HEADER + i] = (uint8_t)(seq >> (8 * i));
    struct virtq_buf buf = {tx_frame, NET_HEADER + len, 0};
    const char *error = virtq_add_chain(&net_queues[NET_TX], &buf, 1);
    if (error) fail(error);
    virtq_publish_on(net, NET_TX, &net_queues[NET_TX], 0);
    while (!virtq_has_used(&net_queues[NET_TX])) {
    }
    uint32_t used_len;
    error = virtq_pop_used(&net_queues[NET_TX], 0, &used_len);
    if (error) fail(error);
}

static void post_receive(struct virtio_dev *net)
{
    struct virtq_buf buf = {rx_frame, sizeof rx_frame, 1};
    const char *error = virtq_add_chain(&net_queues[NET_RX], &buf, 1);
    if (error) fail(error);
    virtq_publish_on(net, NET_RX, &net_queues[NET_RX], 0);
}

/* Waits for the echo of `seq` until the TSC reaches `deadline` (0: it did not come). Frames of
 * other types or numbers (late echoes) are dropped and the buffer posted again. */
static int wait_echo(struct virtio_dev *net, uint64_t seq, uint64_t deadline)
{
    while (rdtsc() < deadline) {
        if (!virtq_has_used(&net_queues[NET_RX])) continue;
        uint32_t used_len;
        const char *error = virtq_pop_used(&net_queues[NET_RX], 0, &used_len);
        if (error) fail(error);
        const uint8_t *frame = rx_frame + NET_HEADER;
        uint64_t got = 0;
        for (int i = 0; i < 8; ++i) got |= (uint64_t)frame[ETH_HEADER + i] << (8 * i);
        int match = used_len >= NET_HEADER + ETH_HEADER + 8 && frame[12] == (uint8_t)(ECHO_TYPE >> 8) &&
                    frame[13] == (uint8_t)ECHO_TYPE && got == seq;
        post_receive(net);
        if (match) return 1;
    }
    return 0;
}

static void ready(const char *role)
{
    say("ready ");
    serial_puts(role);
    serial_puts("\r\n");
}

/* Says the TSC rate (victims' histograms are in TSC cycles) and gets ready to pace. */
static void print_tsc_khz(void)
{
    uint64_t khz = tsc_khz();
    say("tsc_khz=");
    serial_put_dec(khz);
    serial_puts("\r\n");
    cycles_per_us = khz / 1000 ? khz / 1000 : 1;
    start_pacing();
}

__attribute__((noreturn)) static void victim_disk(void)
{
    struct virtio_dev disk;
    uint64_t blocks = open_disk(&disk) / (VICTIM_READ / SECTOR);
    print_tsc_khz();
    ready("victim_disk");
    uint64_t state = 0x9e3779b97f4a7c15ull, next = rdtsc(); /* xorshift64 */
    for (;;) {
        pace(&next, DISK_PERIOD_US);
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        uint64_t sector = state % blocks * (VICTIM_READ / SECTOR);
        uint64_t start = rdtsc();
        read_disk(&disk, sector, VICTIM_READ);
        record(rdtsc() - start, DISK_BATCH);
    }
}

__attribute__((noreturn)) static void victim_cpu(void)
{
    print_tsc_khz();
    ready("victim_cpu");
    for (uint64_t next = rdtsc();;) {
        pace(&next, CPU_PERIOD_US);
        uint64_t start = rdtsc();
        for (uint32_t i = CPU_CHUNK; i; --i) __asm__ volatile("" : : : "memory");
        record(rdtsc() - start, CPU_BATCH);
    }
}

__attribute__((noreturn)) static void aggressor_disk(void)
{
    struct virtio_dev disk;
    uint64_t sectors = open_disk(&disk);
    ready("aggressor_disk");
    for (uint64_t sector = 0;; sector += AGGRESSOR_READ / SECTOR) {
        if (sector + AGGRESSOR_READ / SECTOR > sectors) sector = 0;
        read_disk(&disk, sector, AGGRESSOR_READ);
    }
}

__attribute__((noreturn)) static void victim_net(void)
{
    struct virtio_dev net;
    uint8_t mac[ETH_ALEN];
    open_net(&net, mac);
    print_tsc_khz();
    post_receive(&net);
    ready("victim_net");
    for (uint64_t seq = 1, next = rdtsc();; ++seq) {
        pace(&next, NET_PERIOD_US);
        uint64_t start = rdtsc();
        send_frame(&net, mac, ECHO_TYPE, seq, ETH_MIN_FRAME);
        uint64_t timeout = ECHO_TIMEOUT_US * cycles_per_us;
        record(wait_echo(&net, seq, start + timeout) ? rdtsc() - start : timeout, NET_BATCH);
    }
}

__attribute__((noreturn)) static void aggressor_net(void)
{
    struct virtio_dev net;
    uint8_t mac[ETH_ALEN];
    open_net(&net, mac);
    ready("aggressor_net");
    for (uint64_t seq = 1;; ++seq) send_frame(&net, mac, FLOOD_TYPE, seq, ETH_MAX_FRAME);
}

__attribute__((noreturn)) static void aggressor_cpu(void)
{
    ready("aggressor_cpu");
    for (;;) __asm__ volatile("" : : : "memory");
}

__attribute__((noreturn)) static void aggressor_memory(void)
{
    ready("aggressor_memory");
    for (uint64_t pass = 1;; ++pass) {
        void *to = (void *)(uintptr_t)MEMORY_START;
        uint64_t count = MEMORY_BYTES / 8;
        __asm__ volatile("rep stosq" : "+D"(to), "+c"(count) : "a"(pass) : "memory");
    }
}

void guest_main(void)
{
    switch (TENANT_ROLE) {
    case VICTIM_DISK: victim_disk();
    case VICTIM_CPU: victim_cpu();
    case AGGRESSOR_DISK: aggressor_disk();
    case AGGRESSOR_CPU: aggressor_cpu();
    case AGGRESSOR_MEMORY: aggressor_memory();
    case VICTIM_NET: victim_net();
    case AGGRESSOR_NET: aggressor_net();
    }
    fail("unknown TENANT_ROLE");
}
