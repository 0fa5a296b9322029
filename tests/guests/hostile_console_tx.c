/* Hostile: a virtio-console transmit flood (run by hostile.sh with --console virtio --transport
 * mmio --cpus 2). Queue 1 gets 256 chains, each one indirect table of 256 descriptors over the same
 * 16 MiB buffer: one notification asks kvmlet to write ~1 TiB to stdout. Every chain kvmlet
 * returns is posted again, forever, while vCPU 1 prints its heartbeat on COM1. */
#include "guest.h"
#include "hostile.h"

static struct hostile_ring receive, transmit;
static struct virtq_desc table[HOSTILE_QUEUE_SIZE] __attribute__((aligned(16)));

void guest_main(void)
{
    struct virtio_dev dev;
    const char *error = hostile_find(&dev, VIRTIO_CONSOLE_DEVICE_ID);
    if (!error) error = hostile_negotiate(&dev, VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC);
    if (!error) error = hostile_setup_ring(&dev, VIRTIO_CONSOLE_RECEIVE_QUEUE, &receive);
    if (!error) error = hostile_setup_ring(&dev, VIRTIO_CONSOLE_TRANSMIT_QUEUE, &transmit);
    if (error) hostile_fail(error);
    /* Posted after DRIVER_OK: a device may transmit what it finds at activation on the vCPU's
     * own thread, and the marker must come out. The marker goes before the notification: COM1
     * and the console share kvmlet's stdout buffer, which the flood fills at once, and a marker
     * printed after it would be dropped with the flood's overflow. */
    hostile_driver_ok(&dev);
    hostile_post_flood(&transmit, table, 0);
    serial_puts("flooding\r\n");
    virtio_write(&dev, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_CONSOLE_TRANSMIT_QUEUE);
    hostile_start_heartbeat();
    hostile_repost_forever(&dev, VIRTIO_CONSOLE_TRANSMIT_QUEUE, &transmit, 1);
}
