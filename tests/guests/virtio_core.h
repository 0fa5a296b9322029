/* The transport-neutral half of the tiny guests' virtio drivers (virtio.h: MMIO, virtio_pci_modern.h:
 * PCI): the device status bits, the reserved feature bits, and the driver side of one split
 * virtqueue (queue 0) of at most VIRTQ_SIZE descriptors with one chain in flight at a time. Guest
 * RAM is identity mapped, so a pointer into the image is the physical address the device sees.
 *
 * Functions that can fail return NULL on success or a short description of what went wrong,
 * ready to print after "FAIL ". */
#ifndef KVMLET_TESTS_GUESTS_VIRTIO_CORE_H
#define KVMLET_TESTS_GUESTS_VIRTIO_CORE_H

#include <stdint.h>

/* §2.1 Device Status Field. */
enum {
    VIRTIO_STATUS_ACKNOWLEDGE = 1,
    VIRTIO_STATUS_DRIVER = 2,
    VIRTIO_STATUS_DRIVER_OK = 4,
    VIRTIO_STATUS_FEATURES_OK = 8,
    VIRTIO_STATUS_DEVICE_NEEDS_RESET = 64,
    VIRTIO_STATUS_FAILED = 128,
};

/* §6 Reserved Feature Bits. */
#define VIRTIO_F_VERSION_1 (1ull << 32)

/* §2.7.5 The Virtqueue Descriptor Table, §2.7.6 The Virtqueue Available Ring. */
enum {
    VIRTQ_DESC_F_NEXT = 1,
    VIRTQ_DESC_F_WRITE = 2,
    VIRTQ_DESC_F_INDIRECT = 4,
    VIRTQ_AVAIL_F_NO_INTERRUPT = 1,
};

/* Enough for one request of header, a few data buffers and a status byte. */
enum { VIRTQ_SIZE = 8 };

/* §2.7.5-§2.7.8: the split virtqueue's wire layout. */
struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[VIRTQ_SIZE];
    uint16_t used_event;
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[VIRTQ_SIZE];
    uint16_t avail_event;
};

_Static_assert(sizeof(struct virtq_desc) == 16, "§2.7.5");
_Static_assert(sizeof(struct virtq_used_elem) == 8, "§2.7.8");

/* The three areas of queue 0 (§2.7: descriptors 16-byte, driver area 2-byte, device area 4-byte
 * aligned; each gets its own page here) and the driver's own bookkeeping. Put it in .bss. */
struct virtq {
    struct virtq_desc desc[VIRTQ_SIZE] __attribute__((aligned(4096)));
    struct virtq_avail avail __attribute__((aligned(4096)));
    struct virtq_used used __attribute__((aligned(4096)));
    uint16_t size;      /* the negotiated queue size, a power of two <= VIRTQ_SIZE */
    uint16_t last_used; /* used.idx as far as the driver has consumed it */
};

/* One buffer of a chain: readable by the device, or writable when `writable` is set. */
struct virtq_buf {
    void *addr;
    uint32_t len;
    int writable;
};

/* Memory ordering (virtio 1.2 §2.7.13). x86 keeps stores in order and loads in order, so the
 * driver's write barrier (descriptors and ring entry before avail.idx) and read barrier
 * (used.idx before the used entry and the data) only have to stop the compiler. The drivers
 * always notify and never read used.flags or avail_event, so they need no full barrier (which
 * is as well: this host's KVM cannot emulate mfence, HOST.md). Every MMIO access is also a
 * compiler barrier, so plain stores to the rings are done before the device is told. */
static inline void compiler_barrier(void)
{
    __asm__ volatile("" ::: "memory");
}

/* Empties the rings and sizes the queue: the largest power of two <= min(VIRTQ_SIZE, max_size).
 * With `interrupts` 0 the driver asks for none (VIRTQ_AVAIL_F_NO_INTERRUPT) and polls. */
void virtq_init(struct virtq *q, uint32_t max_size, int interrupts);

/* Writes a chain of `count` buffers (readable ones first) from descriptor 0. */
const char *virtq_add_chain(struct virtq *q, const struct virtq_buf *bufs, int count);

/* Makes the chain starting at descriptor `head` available; the caller then notifies. */
void virtq_make_available(struct virtq *q, uint16_t head);

/* Whether the device has returned a chain the driver has not consumed yet. */
int virtq_has_used(const struct virtq *q);

/* Polls virtq_has_used() until it holds (1) or `limit_ms` have passed (0), timed by the local
 * APIC timer (lapic.h), which it restarts. */
int virtq_poll_used(const struct virtq *q, uint32_t limit_ms);

/* Consumes the next used entry (virtq_has_used() must be true); checks that it is `head` and
 * stores its used length. */
const char *virtq_pop_used(struct virtq *q, uint16_t head, uint32_t *len);

#endif
