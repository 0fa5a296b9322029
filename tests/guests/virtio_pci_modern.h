/* A small modern virtio-pci driver for the tiny guests (virtio 1.2 §4.1): finds a device on bus 0
 * by its device type, records its virtio structures from the capability list (§4.1.4), runs the
 * device initialisation of §3.1.1 through the common configuration (§4.1.4.3), sets up queues
 * (virtio_core.h), notifies them (§4.1.4.4) and reads the device configuration (§4.1.4.6).
 * Every structure must lie in BAR 0, as kvmlet places them; the driver uses BAR 0 where kvmlet's
 * firmware put it (memory decoding and bus mastering are turned on by virtio_pci_begin).
 *
 * Functions that can fail return NULL on success or a short description of what went wrong,
 * ready to print after "FAIL ". */
#ifndef KVMLET_TESTS_GUESTS_VIRTIO_PCI_MODERN_H
#define KVMLET_TESTS_GUESTS_VIRTIO_PCI_MODERN_H

#include <stdint.h>

#include "guest.h"
#include "virtio_core.h"

enum {
    /* §4.1.2.1 PCI Device Discovery: vendor 0x1af4, device 0x1040 + device type. */
    VIRTIO_PCI_VENDOR = 0x1af4,
    VIRTIO_PCI_DEVICE_BASE = 0x1040,

    /* §4.1.4 struct virtio_pci_cap (after the capability ID and next pointer). */
    VIRTIO_CAP_CFG_TYPE = 3,
    VIRTIO_CAP_BAR = 4,
    VIRTIO_CAP_OFFSET = 8,
    VIRTIO_CAP_LENGTH = 12,
    VIRTIO_CAP_NOTIFY_MULTIPLIER = 16, /* §4.1.4.4 struct virtio_pci_notify_cap */
    VIRTIO_CAP_PCI_CFG_DATA = 16,      /* §4.1.4.9 struct virtio_pci_cfg_cap */

    /* §4.1.4 cfg_type values. */
    VIRTIO_PCI_CAP_COMMON = 1,
    VIRTIO_PCI_CAP_NOTIFY = 2,
    VIRTIO_PCI_CAP_ISR = 3,
    VIRTIO_PCI_CAP_DEVICE = 4,
    VIRTIO_PCI_CAP_PCI_CFG = 5,

    /* §4.1.4.3 struct virtio_pci_common_cfg. */
    VIRTIO_COMMON_DEVICE_FEATURE_SELECT = 0x00,
    VIRTIO_COMMON_DEVICE_FEATURE = 0x04,
    VIRTIO_COMMON_DRIVER_FEATURE_SELECT = 0x08,
    VIRTIO_COMMON_DRIVER_FEATURE = 0x0c,
    VIRTIO_COMMON_NUM_QUEUES = 0x12,
    VIRTIO_COMMON_DEVICE_STATUS = 0x14,
    VIRTIO_COMMON_CONFIG_GENERATION = 0x15,
    VIRTIO_COMMON_QUEUE_SELECT = 0x16,
    VIRTIO_COMMON_QUEUE_SIZE = 0x18,
    VIRTIO_COMMON_QUEUE_MSIX_VECTOR = 0x1a,
    VIRTIO_COMMON_QUEUE_ENABLE = 0x1c,
    VIRTIO_COMMON_QUEUE_NOTIFY_OFF = 0x1e,
    VIRTIO_COMMON_QUEUE_DESC = 0x20,
    VIRTIO_COMMON_QUEUE_DRIVER = 0x28,
    VIRTIO_COMMON_QUEUE_DEVICE = 0x30,
    VIRTIO_COMMON_SIZE = 0x38,

    VIRTIO_ISR_QUEUE = 1,          /* §4.1.4.5 ISR status: a used buffer */
    VIRTIO_PCI_NO_VECTOR = 0xffff, /* §4.1.5.1.2 VIRTIO_MSI_NO_VECTOR */
    VIRTIO_PCI_QUEUES_MAX = 4,     /* what the tiny guests' devices use at most */
};

/* A virtio-pci function as its capabilities describe it. */
struct virtio_pci_dev {
    uint8_t slot;
    uint8_t pci_cfg_cap;                  /* the PCI-cfg capability's offset in configuration space */
    unsigned found;                       /* 1 << cfg_type of each structure recorded */
    uint64_t bar;                         /* BAR 0's address */
    uint32_t common, notify, isr, device; /* offsets into BAR 0 */
    uint32_t notify_multiplier;
    uint16_t notify_off[VIRTIO_PCI_QUEUES_MAX]; /* per queue, from virtio_pci_setup_queues */
    uint64_t offered;                           /* the device's features (virtio_pci_begin) */
    uint64_t features;                          /* the accepted ones (virtio_pci_negotiate) */
};

/* Called by virtio_pci_probe with its `context` for each capability in the list (at offset `cap`,
 * with capability ID `id`), after a virtio structure in it has been recorded. */
typedef void virtio_pci_visitor(void *context, uint8_t cap, uint8_t id);

/* The lowest slot on bus 0 holding virtio device type `type`, 0 when there is none. */
uint8_t virtio_pci_find(uint16_t type);

/* Walks the capability list of `slot` (bounded) and records the first of each virtio structure
 * type (§4.1.4: the first is the preferred one), calling `visit` (may be NULL) for every
 * capability; requires the common (at least VIRTIO_COMMON_SIZE bytes), notify and device
 * structures, and BAR 0 placed. */
const char *virtio_pci_probe(struct virtio_pci_dev *d, uint8_t slot, virtio_pci_visitor *visit, void *context);

/* §3.1.1 steps 1-3: memory decoding and bus mastering on, reset (waiting for the status to read
 * back 0), ACKNOWLEDGE and DRIVER; then stores the device's features in d->offered. */
const char *virtio_pci_begin(struct virtio_pci_dev *d);

/* §3.1.1 steps 4-6: accepts `required` (VERSION_1 always among it), which the device must offer,
 * and what it offers of `wanted`; sets FEATURES_OK and checks that it stays set. */
const char *virtio_pci_negotiate(struct virtio_pci_dev *d, uint64_t required, uint64_t wanted);

/* §4.1.5.1.3 Virtqueue Configuration of queues 0..count-1 in queues[0..count-1] (virtq_init at
 * the device's maximum size), each on MSI-X `vector` (read back to check, §4.1.5.1.2) or, with
 * VIRTIO_PCI_NO_VECTOR, on none, polled. */
const char *virtio_pci_setup_queues(struct virtio_pci_dev *d, struct virtq *const *queues, uint16_t count,
                                    uint16_t vector);

/* §3.1.1 step 8: DRIVER_OK; fails if the device then asks for a reset. */
const char *virtio_pci_driver_ok(struct virtio_pci_dev *d);

/* All of §3.1.1: virtio_pci_begin, virtio_pci_negotiate, virtio_pci_setup_queues and
 * virtio_pci_driver_ok in turn. */
const char *virtio_pci_init(struct virtio_pci_dev *d, uint64_t required, uint64_t wanted,
                            struct virtq *const *queues, uint16_t count, uint16_t vector);

/* Where, in BAR 0, queue `index`'s notifications go (§4.1.4.4); and a notification there. */
uint32_t virtio_pci_notify_offset(const struct virtio_pci_dev *d, uint16_t index);
void virtio_pci_notify(const struct virtio_pci_dev *d, uint16_t index);

/* The address of a field of the common configuration and of the device configuration. */
static inline uintptr_t virtio_pci_common(const struct virtio_pci_dev *d, uint32_t field)
{
    return (uintptr_t)(d->bar + d->common + field);
}

static inline uintptr_t virtio_pci_config(const struct virtio_pci_dev *d, uint32_t offset)
{
    return (uintptr_t)(d->bar + d->device + offset);
}

static inline uint8_t virtio_pci_config_generation(const struct virtio_pci_dev *d)
{
    return mmio_read8(virtio_pci_common(d, VIRTIO_COMMON_CONFIG_GENERATION));
}

#endif
