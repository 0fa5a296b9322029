/* What the hostile virtio guests share (see hostile.h). */
#include "hostile.h"

#include "guest.h"
#include "idt.h"
#include "ipi.h"
#include "lapic.h"

enum {
    INIT_TO_SIPI_MS = 10,
    SIPI_TO_SIPI_MS = 1,
    HEARTBEAT_VECTOR = 0x40,
};

volatile uint64_t hostile_rounds;

void hostile_fail(const char *why)
{
    serial_puts("FAIL ");
    serial_puts(why);
    serial_puts("\r\n");
    guest_reset();
}

const char *hostile_find(struct virtio_dev *dev, uint32_t device_id)
{
    for (unsigned i = 0; i < HOSTILE_MMIO_WINDOWS; ++i) {
        dev->base = virtio_mmio_window(i);
        if (virtio_read(dev, VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MMIO_MAGIC) break;
        if (virtio_probe(dev, dev->base, device_id) == 0) return 0;
    }
    return "no virtio-mmio device of the wanted type (--transport mmio?)";
}

static void write_driver_features(const struct virtio_dev *dev, uint64_t features)
{
    virtio_write(dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    virtio_write(dev, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
    virtio_write(dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    virtio_write(dev, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
}

const char *hostile_negotiate(struct virtio_dev *dev, uint64_t features)
{
    const char *error = virtio_reset(dev);
    if (error) return error;
    uint32_t status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    virtio_write(dev, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_write(dev, VIRTIO_MMIO_STATUS, status);
    write_driver_features(dev, features);
    dev->driver_features = features;
    virtio_write(dev, VIRTIO_MMIO_STATUS, status | VIRTIO_STATUS_FEATURES_OK);
    if (!(virtio_read(dev, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
        return "the device did not accept the features (FEATURES_OK)";
    }
    return 0;
}

static void write_address(const struct virtio_dev *dev, uint32_t low_reg, uint64_t address)
{
    virtio_write(dev, low_reg, (uint32_t)address);
    virtio_write(dev, low_reg + 4, (uint32_t)(address >> 32));
}

const char *hostile_setup_queue(struct virtio_dev *dev, uint32_t index, uint64_t desc, uint64_t avail,
                                uint64_t used)
{
    virtio_write(dev, VIRTIO_MMIO_QUEUE_SEL, index);
    if (virtio_read(dev, VIRTIO_MMIO_QUEUE_NUM_MAX) < HOSTILE_QUEUE_SIZE) {
        return "the queue takes fewer than 256 entries";
    }
    virtio_write(dev, VIRTIO_MMIO_QUEUE_NUM, HOSTILE_QUEUE_SIZE);
    write_address(dev, VIRTIO_MMIO_QUEUE_DESC_LOW, desc);
    write_address(dev, VIRTIO_MMIO_QUEUE_DRIVER_LOW, avail);
    write_address(dev, VIRTIO_MMIO_QUEUE_DEVICE_LOW, used);
    virtio_write(dev, VIRTIO_MMIO_QUEUE_READY, 1);
    return 0;
}

/* volatile, so the compiler cannot turn the loop into a call to memset (there is no libc). */
static void zero(volatile void *start, uint32_t len)
{
    volatile uint8_t *p = start;
    for (uint32_t i = 0; i < len; ++i) p[i] = 0;
}

const char *hostile_setup_ring(struct virtio_dev *dev, uint32_t index, struct hostile_ring *ring)
{
    zero(ring->desc, sizeof ring->desc);
    zero(&ring->avail, sizeof ring->avail);
    zero(&ring->used, sizeof ring->used);
    ring->avail.flags = VIRTQ_AVAIL_F_NO_INTERRUPT; /* polled */
    return hostile_setup_queue(dev, index, (uintptr_t)ring->desc, (uintptr_t)&ring->avail,
                               (uintptr_t)&ring->used);
}

void hostile_driver_ok(struct virtio_dev *dev)
{
    virtio_write(dev, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                                              VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

/* Makes chain `head` available (the caller notifies, if at all). */
static void make_available(struct hostile_ring *ring, uint16_t head)
{
    volatile uint16_t *idx = &ring->avail.idx;
    compiler_barrier(); /* the descriptors before the ring entry */
    uint16_t i = *idx;
    ring->avail.ring[i % HOSTILE_QUEUE_SIZE] = head;
    compiler_barrier();
    *idx = (uint16_t)(i + 1);
}

void hostile_post_flood(struct hostile_ring *ring, struct virtq_desc *table, int writable)
{
    uint16_t write = writable ? VIRTQ_DESC_F_WRITE : 0;
    for (uint16_t i = 0; i < HOSTILE_QUEUE_SIZE; ++i) {
        int last = i + 1 == HOSTILE_QUEUE_SIZE;
        table[i].addr = HOSTILE_BUFFER_ADDRESS;
        table[i].len = HOSTILE_BUFFER_LEN;
        table[i].flags = (uint16_t)(write | (last ? 0 : VIRTQ_DESC_F_NEXT));
        table[i].next = (uint16_t)(last ? 0 : i + 1);
    }
    for (uint16_t head = 0; head < HOSTILE_QUEUE_SIZE; ++head) {
        ring->desc[head].addr = (uintptr_t)table;
        ring->desc[head].len = HOSTILE_QUEUE_SIZE * sizeof *table;
        ring->desc[head].flags = VIRTQ_DESC_F_INDIRECT;
        ring->desc[head].next = 0;
        make_available(ring, head);
    }
}

void hostile_post_empty(struct hostile_ring *ring)
{
    for (uint16_t head = 0; head < HOSTILE_QUEUE_SIZE; ++head) {
        ring->desc[head].addr = HOSTILE_BUFFER_ADDRESS;
        ring->desc[head].len = 0;
        ring->desc[head].flags = VIRTQ_DESC_F_WRITE;
        ring->desc[head].next = 0;
        make_available(ring, head);
    }
}

void hostile_repost_forever(struct virtio_dev *dev, uint32_t index, struct hostile_ring *ring, int notify)
{
    volatile uint16_t *used_idx = &ring->used.idx;
    volatile uint16_t *avail_idx = &ring->avail.idx;
    /* What avail.idx was last set against; the device may have returned chains since. */
    uint16_t seen = (uint16_t)(*avail_idx - HOSTILE_QUEUE_SIZE);
    for (;;) {
        uint16_t used = *used_idx;
        if (used == seen) continue;
        hostile_rounds += (uint16_t)(used - seen);
        seen = used;
        *avail_idx = (uint16_t)(used + HOSTILE_QUEUE_SIZE);
        if (notify) virtio_write(dev, VIRTIO_MMIO_QUEUE_NOTIFY, index);
    }
}


void hostile_start_heartbeat(void)
{
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    if (cr3 >> 32) hostile_fail("page tables above 4 GiB, out of the APs' reach");
    ipi_ap_cr3 = (uint32_t)cr3;
    lapic_timer_start();
    uint32_t sipi = ICR_DELIVERY_STARTUP | (uint32_t)((uintptr_t)ipi_trampoline >> 12);
    lapic_send_to_others(ICR_DELIVERY_INIT);
    lapic_delay_ms(INIT_TO_SIPI_MS);
    lapic_send_to_others(sipi);
    lapic_delay_ms(SIPI_TO_SIPI_MS);
    lapic_send_to_others(sipi);
}

/* vCPU 1's heartbeat sleeps in `hlt` between beats, woken by its local APIC timer in periodic mode,
 * so that it leaves the host CPU to vCPU 0's flood. A lost tick only delays a beat. */
static volatile uint64_t ticks;

void heartbeat_tick(void)
{
    ticks++;
    lapic_write(LAPIC_EOI, 0);
}
IDT_ENTRY(heartbeat_entry, heartbeat_tick);

static void start_ticking(void)
{
    idt_set_gate(HEARTBEAT_VECTOR, heartbeat_entry);
    idt_load();
    lapic_write(LAPIC_SVR, SVR_APIC_ENABLE | SPURIOUS_VECTOR);
    lapic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    lapic_write(LAPIC_LVT_TIMER, LVT_TIMER_PERIODIC | HEARTBEAT_VECTOR);
    lapic_write(LAPIC_TIMER_INITIAL, HOSTILE_HEARTBEAT_MS * TIMER_TICKS_PER_MS);
}

/* vCPU 1 prints the heartbeat; any other AP halts. */
void ap_main(uint32_t apic_id)
{
    if (apic_id != 1) guest_halt();
    start_ticking();
    for (uint64_t seen = 0;;) {
        __asm__ volatile("sti; hlt; cli" ::: "memory");
        if (ticks == seen) continue;
        seen = ticks;
        serial_puts("alive ");
        serial_put_dec(seen);
        serial_puts(" rounds ");
        serial_put_dec(hostile_rounds);
        serial_puts("\r\n");
    }
}
