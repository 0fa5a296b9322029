/* What the hostile virtio guests share (hostile_*.c, run by hostile.sh): they drive one
 * virtio-mmio device (virtio.h) with queues of 256 entries, flood it with work that never ends,
 * and keep a second vCPU printing a heartbeat on COM1, so the test can see that kvmlet, asked to
 * stop, stops however busy the device is, and that the rest of the machine kept running
 * meanwhile.
 *
 * Protocol with hostile.sh, on COM1: "flooding" once the device has been given the endless work,
 * "alive <n> rounds <r>" from vCPU 1 every HEARTBEAT_MS (r: hostile_rounds), "FAIL <what>" (then
 * a reset) when the set-up goes wrong. Functions that can fail return NULL on success or what went
 * wrong, as in virtio.h. */
#ifndef KVMLET_TESTS_GUESTS_HOSTILE_H
#define KVMLET_TESTS_GUESTS_HOSTILE_H

#include <stdint.h>

#include "virtio.h"

/* §5.3 Console Device, §5.4 Entropy Device. */
enum {
    VIRTIO_CONSOLE_DEVICE_ID = 3,
    VIRTIO_RNG_DEVICE_ID = 4,
    VIRTIO_CONSOLE_RECEIVE_QUEUE = 0,
    VIRTIO_CONSOLE_TRANSMIT_QUEUE = 1,
};
/* §6 Reserved Feature Bits. */
#define VIRTIO_F_INDIRECT_DESC (1ull << 28)

enum {
    HOSTILE_QUEUE_SIZE = 256,            /* kvmlet's maximum for the console and rng queues */
    HOSTILE_MMIO_WINDOWS = 16,           /* windows searched for the device */
    HOSTILE_HEARTBEAT_MS = 100,
};

/* One buffer that every descriptor of the flood points at: 16 MiB of RAM well away from the image
 * (1 MiB) and inside the default 128 MiB. A descriptor covers it but one byte, so that a chain of
 * 256 of them (4 GiB - 256 bytes) stays under kvmlet's 4 GiB limit per chain and is accepted. */
#define HOSTILE_BUFFER_ADDRESS 0x2000000ul
#define HOSTILE_BUFFER_LEN ((16u << 20) - 1)

/* A split virtqueue of HOSTILE_QUEUE_SIZE entries (§2.7), each area on its own page. */
struct hostile_ring {
    struct virtq_desc desc[HOSTILE_QUEUE_SIZE] __attribute__((aligned(4096)));
    struct {
        uint16_t flags;
        uint16_t idx;
        uint16_t ring[HOSTILE_QUEUE_SIZE];
        uint16_t used_event;
    } avail __attribute__((aligned(4096)));
    struct {
        uint16_t flags;
        uint16_t idx;
        struct virtq_used_elem ring[HOSTILE_QUEUE_SIZE];
        uint16_t avail_event;
    } used __attribute__((aligned(4096)));
};

/* Rounds of the guest's endless work so far: chains the device returned, or resets. */
extern volatile uint64_t hostile_rounds;

/* Prints "FAIL <why>" on COM1 and resets the machine (kvmlet exits before the test's marker). */
__attribute__((noreturn)) void hostile_fail(const char *why);

/* Finds the virtio-mmio window of a device of type `device_id`. */
const char *hostile_find(struct virtio_dev *dev, uint32_t device_id);

/* §3.1.1 up to FEATURES_OK, accepting exactly `features` (VERSION_1 included). */
const char *hostile_negotiate(struct virtio_dev *dev, uint64_t features);

/* §4.2.3.2 for queue `index` of HOSTILE_QUEUE_SIZE entries at the given guest-physical areas
 * (which may be anywhere: the reset-loop guest points them outside RAM). */
const char *hostile_setup_queue(struct virtio_dev *dev, uint32_t index, uint64_t desc, uint64_t avail,
                                uint64_t used);
/* The same for `ring`, emptied first. */
const char *hostile_setup_ring(struct virtio_dev *dev, uint32_t index, struct hostile_ring *ring);

/* Sets DRIVER_OK on top of what hostile_negotiate() set. */
void hostile_driver_ok(struct virtio_dev *dev);

/* Both write HOSTILE_QUEUE_SIZE chains, all alike, into `ring` and make them available, chain i in
 * avail ring entry i. Here each chain is one indirect descriptor to the shared table `table` of
 * HOSTILE_QUEUE_SIZE descriptors, each of HOSTILE_BUFFER_LEN bytes at HOSTILE_BUFFER_ADDRESS
 * (device-writable when `writable`): ~1 TiB of work in all. */
void hostile_post_flood(struct hostile_ring *ring, struct virtq_desc *table, int writable);
/* Each chain is one empty device-writable buffer. */
void hostile_post_empty(struct hostile_ring *ring);

/* Forever: keeps every chain available. As chains are alike and avail ring entry i always names
 * chain i % HOSTILE_QUEUE_SIZE, returned chains are made available again by moving avail.idx to
 * used.idx + HOSTILE_QUEUE_SIZE (one store, however many came back, so the device never finds
 * the ring empty); each returned chain counts a round. Notifies queue `index` after each move
 * when `notify` is set. Never returns. */
__attribute__((noreturn)) void hostile_repost_forever(struct virtio_dev *dev, uint32_t index,
                                                      struct hostile_ring *ring, int notify);

/* Starts vCPU 1 (INIT-SIPI-SIPI to all but self), which prints "alive <n> rounds <r>" every
 * HEARTBEAT_MS on COM1 from then on (n: timer ticks so far), sleeping in between. The caller must
 * not print after this: COM1 is vCPU 1's. */
void hostile_start_heartbeat(void);

#endif
