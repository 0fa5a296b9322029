/* Hostile: a virtio-rng flood (run by hostile.sh with --rng --transport mmio --cpus 2). Queue 0
 * gets 256 chains, each one indirect table of 256 device-writable descriptors over the same 16 MiB
 * buffer (~4 GiB asked for per chain), and every chain kvmlet returns is posted again and notified,
 * forever, while vCPU 1 prints its heartbeat on COM1. */
#include "guest.h"
#include "hostile.h"

static struct hostile_ring requests;
static struct virtq_desc table[HOSTILE_QUEUE_SIZE] __attribute__((aligned(16)));

void guest_main(void)
{
    struct virtio_dev dev;
    const char *error = hostile_find(&dev, VIRTIO_RNG_DEVICE_ID);
    if (!error) error = hostile_negotiate(&dev, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC);
    if (!error) error = hostile_setup_ring(&dev, 0, &requests);
    if (error) hostile_fail(error);
    hostile_driver_ok(&dev);
    hostile_post_flood(&requests, table, 1);
    virtio_write(&dev, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    serial_puts("flooding\r\n");
    hostile_start_heartbeat();
    hostile_repost_forever(&dev, 0, &requests, 1);
}
