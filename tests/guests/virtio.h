/* A tiny virtio-mmio driver for the tiny guests: modern devices only (MMIO version 2), queue 0
 * (virtio_core.h: one split virtqueue, one request in flight at a time), completion by polling
 * the used ring (interrupts stay off), plus block requests (§5.2). Waits time out after 5 s of
 * real time (the local APIC timer).
 *
 * Functions that can fail return NULL on success or a short description of what went wrong,
 * ready to print after "FAIL ". */
#ifndef KVMLET_TESTS_GUESTS_VIRTIO_H
#define KVMLET_TESTS_GUESTS_VIRTIO_H

#include <stdint.h>

#include "virtio_core.h"

/* virtio 1.2 §4.2.2 MMIO Device Register Layout (offsets into a device's window). */
enum {
    VIRTIO_MMIO_MAGIC_VALUE = 0x000,
    VIRTIO_MMIO_VERSION = 0x004,
    VIRTIO_MMIO_DEVICE_ID = 0x008,
    VIRTIO_MMIO_VENDOR_ID = 0x00c,
    VIRTIO_MMIO_DEVICE_FEATURES = 0x010,
    VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014,
    VIRTIO_MMIO_DRIVER_FEATURES = 0x020,
    VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024,
    VIRTIO_MMIO_QUEUE_SEL = 0x030,
    VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034,
    VIRTIO_MMIO_QUEUE_NUM = 0x038,
    VIRTIO_MMIO_QUEUE_READY = 0x044,
    VIRTIO_MMIO_QUEUE_NOTIFY = 0x050,
    VIRTIO_MMIO_INTERRUPT_STATUS = 0x060,
    VIRTIO_MMIO_INTERRUPT_ACK = 0x064,
    VIRTIO_MMIO_STATUS = 0x070,
    VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080,
    VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084,
    VIRTIO_MMIO_QUEUE_DRIVER_LOW = 0x090,
    VIRTIO_MMIO_QUEUE_DRIVER_HIGH = 0x094,
    VIRTIO_MMIO_QUEUE_DEVICE_LOW = 0x0a0,
    VIRTIO_MMIO_QUEUE_DEVICE_HIGH = 0x0a4,
    VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc,
    VIRTIO_MMIO_CONFIG = 0x100,

    VIRTIO_MMIO_MAGIC = 0x74726976, /* "virt", little-endian */
    VIRTIO_MMIO_VERSION_MODERN = 2,

    VIRTIO_MMIO_INT_USED_BUFFER = 1 << 0,
    VIRTIO_MMIO_INT_CONFIG = 1 << 1,
};

struct virtio_dev {
    uintptr_t base; /* the device's MMIO window */
    uint64_t device_features;
    uint64_t driver_features;
    struct virtq *queue;
};

/* The i-th virtio-mmio window kvmlet creates (firmware/x86_64/layout.hpp: virtio_mmio_start). */
static inline uintptr_t virtio_mmio_window(unsigned index)
{
    return 0xd0000000u + 0x1000u * index;
}

uint32_t virtio_read(const struct virtio_dev *dev, uint32_t reg);
void virtio_write(const struct virtio_dev *dev, uint32_t reg, uint32_t value);

/* Checks the magic value, version 2 and the device ID at `base`. */
const char *virtio_probe(struct virtio_dev *dev, uintptr_t base, uint32_t device_id);

/* §3.1.1 Driver Requirements: Device Initialization. Accepts the offered subset of `wanted`
 * (which must include VERSION_1), sets up queue 0 in `queue` and ends with DRIVER_OK. */
const char *virtio_init(struct virtio_dev *dev, uint64_t wanted, struct virtq *queue);
/* The same with queues 0..count-1 in queues[0..count-1]; dev->queue is queue 0. */
const char *virtio_init_queues(struct virtio_dev *dev, uint64_t wanted, struct virtq *queues, uint32_t count);

/* Writes 0 to the status register; returns once the device reads back 0 (or times out). */
const char *virtio_reset(struct virtio_dev *dev);

/* A 64-bit field of the device configuration space, read consistently (§4.2.2.2, §2.5.1). */
uint64_t virtio_config_read64(const struct virtio_dev *dev, uint32_t offset);

/* Whether the status register shows any of `bits` within the timeout. */
int virtio_wait_status(const struct virtio_dev *dev, uint32_t bits);

/* Makes the chain starting at descriptor `head` (already written into queue->desc) available
 * and notifies queue 0. */
void virtq_publish(struct virtio_dev *dev, uint16_t head);
/* The same for queue `index`, set up in `q`. */
void virtq_publish_on(struct virtio_dev *dev, uint32_t index, struct virtq *q, uint16_t head);

/* Waits until the device returns a chain; checks that it is `head` and stores its used length. */
const char *virtq_wait_used(struct virtio_dev *dev, uint16_t head, uint32_t *len);

/* Builds a chain of `count` buffers (readable ones first) from descriptor 0, publishes it and
 * waits for it to come back. */
const char *virtq_transfer(struct virtio_dev *dev, const struct virtq_buf *bufs, int count, uint32_t *len);

/* §5.2 Block Device. */
enum {
    VIRTIO_BLK_DEVICE_ID = 2,
    VIRTIO_BLK_SECTOR_SIZE = 512,
    VIRTIO_BLK_CONFIG_CAPACITY = 0x00, /* u64, in 512-byte sectors */
    VIRTIO_BLK_ID_BYTES = 20,

    VIRTIO_BLK_T_IN = 0,
    VIRTIO_BLK_T_OUT = 1,
    VIRTIO_BLK_T_FLUSH = 4,
    VIRTIO_BLK_T_GET_ID = 8,

    VIRTIO_BLK_S_OK = 0,
    VIRTIO_BLK_S_IOERR = 1,
    VIRTIO_BLK_S_UNSUPP = 2,
    VIRTIO_BLK_S_NOT_WRITTEN = 0xff, /* ours: what the status byte holds until the device writes it */
};
#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)

struct virtio_blk_req_header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};
_Static_assert(sizeof(struct virtio_blk_req_header) == 16, "§5.2.6");

/* One request: the header, the `data` buffers (device-writable for reads and GET_ID, readable
 * for writes, none for FLUSH) and the status byte. Stores the status byte and the used length. */
const char *virtio_blk_request(struct virtio_dev *dev, uint32_t type, uint64_t sector,
                               const struct virtq_buf *data, int data_count, uint8_t *status,
                               uint32_t *used_len);

#endif
