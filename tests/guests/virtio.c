/* A tiny virtio-mmio driver for the tiny guests (see virtio.h). */
#include "virtio.h"

#include "lapic.h"

/* Waits are bounded in real time (lapic.h): the device answers from host threads (file I/O,
 * fsync) however slowly the guest runs. */
enum { VIRTIO_TIMEOUT_MS = 5000, CONFIG_READ_TRIES = 100 };

static void timer_restart(void)
{
    lapic_timer_start();
}

static int timer_expired(void)
{
    return lapic_timer_elapsed_ms() >= VIRTIO_TIMEOUT_MS;
}

uint32_t virtio_read(const struct virtio_dev *dev, uint32_t reg)
{
    uint32_t value = *(volatile uint32_t *)(dev->base + reg);
    compiler_barrier();
    return value;
}

void virtio_write(const struct virtio_dev *dev, uint32_t reg, uint32_t value)
{
    compiler_barrier();
    *(volatile uint32_t *)(dev->base + reg) = value;
}

static void write_address(const struct virtio_dev *dev, uint32_t low_reg, const volatile void *address)
{
    uint64_t value = (uintptr_t)address;
    virtio_write(dev, low_reg, (uint32_t)value);
    virtio_write(dev, low_reg + 4, (uint32_t)(value >> 32));
}

const char *virtio_probe(struct virtio_dev *dev, uintptr_t base, uint32_t device_id)
{
    dev->base = base;
    dev->queue = 0;
    if (virtio_read(dev, VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MMIO_MAGIC) return "no virtio-mmio magic value";
    if (virtio_read(dev, VIRTIO_MMIO_VERSION) != VIRTIO_MMIO_VERSION_MODERN) {
        return "virtio-mmio version is not 2";
    }
    if (virtio_read(dev, VIRTIO_MMIO_DEVICE_ID) != device_id) return "unexpected virtio device ID";
    return 0;
}

const char *virtio_reset(struct virtio_dev *dev)
{
    /* §2.4.2: wait for the status to read back 0 before initialising again. */
    virtio_write(dev, VIRTIO_MMIO_STATUS, 0);
    timer_restart();
    while (virtio_read(dev, VIRTIO_MMIO_STATUS) != 0) {
        if (timer_expired()) return "the device status did not return to 0 after a reset";
    }
    return 0;
}

static uint64_t read_device_features(const struct virtio_dev *dev)
{
    virtio_write(dev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    uint64_t high = virtio_read(dev, VIRTIO_MMIO_DEVICE_FEATURES);
    virtio_write(dev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    uint64_t low = virtio_read(dev, VIRTIO_MMIO_DEVICE_FEATURES);
    return high << 32 | low;
}

static void write_driver_features(const struct virtio_dev *dev, uint64_t features)
{
    virtio_write(dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    virtio_write(dev, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
    virtio_write(dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    virtio_write(dev, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
}

/* §4.2.3.2 Virtqueue Configuration, for queue `index`. */
static const char *setup_queue(struct virtio_dev *dev, uint32_t index, struct virtq *q)
{
    virtio_write(dev, VIRTIO_MMIO_QUEUE_SEL, index);
    if (virtio_read(dev, VIRTIO_MMIO_QUEUE_READY) != 0) return "a queue is ready before it was set up";
    uint32_t max = virtio_read(dev, VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (max == 0) return "a queue is not available";
    virtq_init(q, max, 0); /* polled: interrupts stay off */

    virtio_write(dev, VIRTIO_MMIO_QUEUE_NUM, q->size);
    write_address(dev, VIRTIO_MMIO_QUEUE_DESC_LOW, q->desc);
    write_address(dev, VIRTIO_MMIO_QUEUE_DRIVER_LOW, &q->avail);
    write_address(dev, VIRTIO_MMIO_QUEUE_DEVICE_LOW, &q->used);
    virtio_write(dev, VIRTIO_MMIO_QUEUE_READY, 1);
    return 0;
}

/* §3.1.1: on a step that goes wrong, set FAILED and give up. */
static const char *init_failed(struct virtio_dev *dev, const char *why)
{
    virtio_write(dev, VIRTIO_MMIO_STATUS, virtio_read(dev, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_FAILED);
    return why;
}

const char *virtio_init(struct virtio_dev *dev, uint64_t wanted, struct virtq *queue)
{
    return virtio_init_queues(dev, wanted, queue, 1);
}

const char *virtio_init_queues(struct virtio_dev *dev, uint64_t wanted, struct virtq *queues, uint32_t count)
{
    const char *error = virtio_reset(dev);
    if (error) return error;
    uint32_t status = VIRTIO_STATUS_ACKNOWLEDGE;
    virtio_write(dev, VIRTIO_MMIO_STATUS, status);
    status |= VIRTIO_STATUS_DRIVER;
    virtio_write(dev, VIRTIO_MMIO_STATUS, status);

    dev->device_features = read_device_features(dev);
    dev->driver_features = dev->device_features & wanted;
    if (!(dev->driver_features & VIRTIO_F_VERSION_1)) {
        return init_failed(dev, "the device does not offer VERSION_1");
    }
    write_driver_features(dev, dev->driver_features);
    status |= VIRTIO_STATUS_FEATURES_OK;
    virtio_write(dev, VIRTIO_MMIO_STATUS, status);
    if (!(virtio_read(dev, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
        return init_failed(dev, "the device did not accept the features (FEATURES_OK)");
    }

    for (uint32_t i = 0; i < count; ++i) {
        error = setup_queue(dev, i, &queues[i]);
        if (error) return init_failed(dev, error);
    }
    dev->queue = &queues[0];
    status |= VIRTIO_STATUS_DRIVER_OK;
    virtio_write(dev, VIRTIO_MMIO_STATUS, status);
    return 0;
}

uint64_t virtio_config_read64(const struct virtio_dev *dev, uint32_t offset)
{
    /* §4.2.2.2: 64-bit fields are read as two 32-bit halves; §2.5.1: retry while the
     * configuration generation changes under the reads. */
    uint32_t generation, low, high;
    int tries = 0;
    do {
        generation = virtio_read(dev, VIRTIO_MMIO_CONFIG_GENERATION);
        low = virtio_read(dev, VIRTIO_MMIO_CONFIG + offset);
        high = virtio_read(dev, VIRTIO_MMIO_CONFIG + offset + 4);
    } while (virtio_read(dev, VIRTIO_MMIO_CONFIG_GENERATION) != generation && ++tries < CONFIG_READ_TRIES);
    return (uint64_t)high << 32 | low;
}

int virtio_wait_status(const struct virtio_dev *dev, uint32_t bits)
{
    timer_restart();
    while (!(virtio_read(dev, VIRTIO_MMIO_STATUS) & bits)) {
        if (timer_expired()) return 0;
    }
    return 1;
}

void virtq_publish(struct virtio_dev *dev, uint16_t head)
{
    virtq_publish_on(dev, 0, dev->queue, head);
}

void virtq_publish_on(struct virtio_dev *dev, uint32_t index, struct virtq *q, uint16_t head)
{
    virtq_make_available(q, head);
    virtio_write(dev, VIRTIO_MMIO_QUEUE_NOTIFY, index);
}

const char *virtq_wait_used(struct virtio_dev *dev, uint16_t head, uint32_t *len)
{
    timer_restart();
    while (!virtq_has_used(dev->queue)) {
        if (timer_expired()) return "timed out waiting for the device to return the request";
    }
    return virtq_pop_used(dev->queue, head, len);
}

const char *virtq_transfer(struct virtio_dev *dev, const struct virtq_buf *bufs, int count, uint32_t *len)
{
    const char *error = virtq_add_chain(dev->queue, bufs, count);
    if (error) return error;
    virtq_publish(dev, 0);
    return virtq_wait_used(dev, 0, len);
}

/* One block request at a time: its header and status byte live here. */
static struct {
    struct virtio_blk_req_header header;
    uint8_t status;
} blk_request;

const char *virtio_blk_request(struct virtio_dev *dev, uint32_t type, uint64_t sector,
                               const struct virtq_buf *data, int data_count, uint8_t *status,
                               uint32_t *used_len)
{
    struct virtq_buf bufs[VIRTQ_SIZE];
    if (data_count < 0 || data_count + 2 > VIRTQ_SIZE) return "too many data buffers for one request";
    blk_request.header.type = type;
    blk_request.header.reserved = 0;
    blk_request.header.sector = sector;
    blk_request.status = VIRTIO_BLK_S_NOT_WRITTEN;

    bufs[0] = (struct virtq_buf){&blk_request.header, sizeof blk_request.header, 0};
    for (int i = 0; i < data_count; ++i) bufs[1 + i] = data[i];
    bufs[1 + data_count] = (struct virtq_buf){&blk_request.status, 1, 1};
    const char *error = virtq_transfer(dev, bufs, data_count + 2, used_len);
    *status = *(volatile uint8_t *)&blk_request.status;
    return error;
}
