/* A small modern virtio-pci driver for the tiny guests (see virtio_pci_modern.h). */
#include "virtio_pci_modern.h"

#include "lapic.h"
#include "pci.h"

enum {
    REQUIRED_STRUCTURES = 1 << VIRTIO_PCI_CAP_COMMON | 1 << VIRTIO_PCI_CAP_NOTIFY |
                          1 << VIRTIO_PCI_CAP_DEVICE,
    TIMEOUT_MS = 2000, /* for what the device does by itself */
};

uint8_t virtio_pci_find(uint16_t type)
{
    uint32_t id = (uint32_t)(VIRTIO_PCI_DEVICE_BASE + type) << 16 | VIRTIO_PCI_VENDOR;
    for (uint8_t slot = 1; slot < PCI_SLOTS; ++slot) {
        if (pci_read32(slot, PCI_VENDOR_ID) == id) return slot;
    }
    return 0;
}

/* Types outside §4.1.4's list are for future use: ignored. */
static const char *record_structure(struct virtio_pci_dev *d, uint8_t cap)
{
    uint8_t type = pci_read8(d->slot, (uint8_t)(cap + VIRTIO_CAP_CFG_TYPE));
    if (type < VIRTIO_PCI_CAP_COMMON || type > VIRTIO_PCI_CAP_PCI_CFG) return 0;
    if (d->found & (1u << type)) return 0; /* §4.1.4: the first of a type is the preferred one */
    d->found |= 1u << type;
    if (type == VIRTIO_PCI_CAP_PCI_CFG) {
        d->pci_cfg_cap = cap; /* a window into the BARs, not a structure in one */
        return 0;
    }
    if (pci_read8(d->slot, (uint8_t)(cap + VIRTIO_CAP_BAR)) != 0) return "a virtio structure outside BAR 0";
    uint32_t offset = pci_read32(d->slot, (uint8_t)(cap + VIRTIO_CAP_OFFSET));
    uint32_t length = pci_read32(d->slot, (uint8_t)(cap + VIRTIO_CAP_LENGTH));
    if (type == VIRTIO_PCI_CAP_COMMON) {
        if (length < VIRTIO_COMMON_SIZE) return "the common configuration is too short";
        d->common = offset;
    }
    if (type == VIRTIO_PCI_CAP_ISR) d->isr = offset;
    if (type == VIRTIO_PCI_CAP_DEVICE) d->device = offset;
    if (type == VIRTIO_PCI_CAP_NOTIFY) {
        d->notify = offset;
        d->notify_multiplier = pci_read32(d->slot, (uint8_t)(cap + VIRTIO_CAP_NOTIFY_MULTIPLIER));
    }
    return 0;
}

const char *virtio_pci_probe(struct virtio_pci_dev *d, uint8_t slot, virtio_pci_visitor *visit, void *context)
{
    d->slot = slot;
    d->found = 0;
    int count = 0;
    for (uint8_t cap = pci_first_capability(slot); cap != 0; cap = pci_next_capability(slot, cap)) {
        if (++count > PCI_CAP_MAX) return "the capability list loops";
        if (cap < PCI_HEADER_SIZE) return "a capability points into the header";
        uint8_t id = pci_read8(slot, cap);
        if (id == PCI_CAP_VENDOR) {
            const char *error = record_structure(d, cap);
            if (error) return error;
        }
        if (visit) visit(context, cap, id);
    }
    if ((d->found & REQUIRED_STRUCTURES) != REQUIRED_STRUCTURES) {
        return "the common, notify or device configuration capability is missing";
    }
    d->bar = pci_bar_address(slot, 0);
    return d->bar == 0 ? "BAR 0 is not placed" : 0;
}

static uint8_t read_status(const struct virtio_pci_dev *d)
{
    return mmio_read8(virtio_pci_common(d, VIRTIO_COMMON_DEVICE_STATUS));
}

static void write_status(const struct virtio_pci_dev *d, uint8_t status)
{
    mmio_write8(virtio_pci_common(d, VIRTIO_COMMON_DEVICE_STATUS), status);
}

static void set_status(const struct virtio_pci_dev *d, uint8_t bits)
{
    write_status(d, (uint8_t)(read_status(d) | bits));
}

static uint16_t read_common16(const struct virtio_pci_dev *d, uint32_t field)
{
    return mmio_read16(virtio_pci_common(d, field));
}

static void write_common16(const struct virtio_pci_dev *d, uint32_t field, uint16_t value)
{
    mmio_write16(virtio_pci_common(d, field), value);
}

static void write_common32(const struct virtio_pci_dev *d, uint32_t field, uint32_t value)
{
    mmio_write32(virtio_pci_common(d, field), value);
}

/* §4.1.3.1: a 64-bit field may be written as two 32-bit halves, low first. */
static void write_common64(const struct virtio_pci_dev *d, uint32_t field, const volatile void *address)
{
    uint64_t value = (uintptr_t)address;
    write_common32(d, field, (uint32_t)value);
    write_common32(d, field + 4, (uint32_t)(value >> 32));
}

const char *virtio_pci_begin(struct virtio_pci_dev *d)
{
    uint16_t command = pci_read16(d->slot, PCI_COMMAND);
    pci_write16(d->slot, PCI_COMMAND, command | PCI_COMMAND_MEMORY | PCI_COMMAND_BUS_MASTER);
    write_status(d, 0); /* §2.4.2: a reset, done when the status reads back 0 */
    lapic_timer_start();
    while (read_status(d) != 0) {
        if (lapic_timer_elapsed_ms() >= TIMEOUT_MS) {
            return "the device status did not return to 0 after a reset";
        }
    }
    set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
    set_status(d, VIRTIO_STATUS_DRIVER);
    d->offered = 0;
    for (uint32_t word = 0; word < 2; ++word) {
        write_common32(d, VIRTIO_COMMON_DEVICE_FEATURE_SELECT, word);
        uint64_t bits = mmio_read32(virtio_pci_common(d, VIRTIO_COMMON_DEVICE_FEATURE));
        d->offered |= bits << (32 * word);
    }
    return 0;
}

const char *virtio_pci_negotiate(struct virtio_pci_dev *d, uint64_t required, uint64_t wanted)
{
    if (!(d->offered & VIRTIO_F_VERSION_1)) return "the device does not offer VERSION_1";
    required |= VIRTIO_F_VERSION_1;
    if ((d->offered & required) != required) return "the device does not offer a feature the driver requires";
    d->features = d->offered & (required | wanted);
    for (uint32_t word = 0; word < 2; ++word) {
        write_common32(d, VIRTIO_COMMON_DRIVER_FEATURE_SELECT, word);
        write_common32(d, VIRTIO_COMMON_DRIVER_FEATURE, (uint32_t)(d->features >> (32 * word)));
    }
    set_status(d, VIRTIO_STATUS_FEATURES_OK);
    if (!(read_status(d) & VIRTIO_STATUS_FEATURES_OK)) {
        return "the device did not accept the features (FEATURES_OK)";
    }
    return 0;
}

static const char *setup_queue(struct virtio_pci_dev *d, uint16_t index, struct virtq *q, uint16_t vector)
{
    write_common16(d, VIRTIO_COMMON_QUEUE_SELECT, index);
    uint16_t max = read_common16(d, VIRTIO_COMMON_QUEUE_SIZE);
    if (max == 0) return "a queue is not available";
    virtq_init(q, max, vector != VIRTIO_PCI_NO_VECTOR);
    write_common16(d, VIRTIO_COMMON_QUEUE_SIZE, q->size);
    if (vector != VIRTIO_PCI_NO_VECTOR) { /* after a reset every queue has none */
        write_common16(d, VIRTIO_COMMON_QUEUE_MSIX_VECTOR, vector);
        if (read_common16(d, VIRTIO_COMMON_QUEUE_MSIX_VECTOR) != vector) {
            return "a queue did not take its MSI-X vector";
        }
    }
    write_common64(d, VIRTIO_COMMON_QUEUE_DESC, q->desc);
    write_common64(d, VIRTIO_COMMON_QUEUE_DRIVER, &q->avail);
    write_common64(d, VIRTIO_COMMON_QUEUE_DEVICE, &q->used);
    d->notify_off[index] = read_common16(d, VIRTIO_COMMON_QUEUE_NOTIFY_OFF);
    write_common16(d, VIRTIO_COMMON_QUEUE_ENABLE, 1);
    return 0;
}

const char *virtio_pci_setup_queues(struct virtio_pci_dev *d, struct virtq *const *queues, uint16_t count,
                                    uint16_t vector)
{
    if (count > VIRTIO_PCI_QUEUES_MAX) return "more queues than VIRTIO_PCI_QUEUES_MAX";
    for (uint16_t index = 0; index < count; ++index) {
        const char *error = setup_queue(d, index, queues[index], vector);
        if (error) return error;
    }
    return 0;
}

const char *virtio_pci_driver_ok(struct virtio_pci_dev *d)
{
    set_status(d, VIRTIO_STATUS_DRIVER_OK);
    return read_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET ? "the device needs a reset" : 0;
}

const char *virtio_pci_init(struct virtio_pci_dev *d, uint64_t required, uint64_t wanted,
                            struct virtq *const *queues, uint16_t count, uint16_t vector)
{
    const char *error = virtio_pci_begin(d);
    if (!error) error = virtio_pci_negotiate(d, required, wanted);
    if (!error) error = virtio_pci_setup_queues(d, queues, count, vector);
    if (!error) error = virtio_pci_driver_ok(d);
    return error;
}

uint32_t virtio_pci_notify_offset(const struct virtio_pci_dev *d, uint16_t index)
{
    return d->notify + (uint32_t)d->notify_off[index] * d->notify_multiplier;
}

/* §4.1.5.2: a 16-bit write of the queue index at the queue's notification address. */
void virtio_pci_notify(const struct virtio_pci_dev *d, uint16_t index)
{
    mmio_write16((uintptr_t)(d->bar + virtio_pci_notify_offset(d, index)), index);
}
