/* Hostile: virtio-console receive buffers that take nothing (run by hostile.sh with --console
 * virtio --transport mmio --cpus 2 and endless input on stdin). Queue 0 gets 256 chains of one
 * empty device-writable buffer, and every chain kvmlet returns (with nothing written) is posted
 * again at once, forever, without a notification (a device looks at the receive ring when it has
 * input), while vCPU 1 prints its heartbeat on COM1. */
#include "guest.h"
#include "hostile.h"

static struct hostile_ring receive, transmit;

void guest_main(void)
{
    struct virtio_dev dev;
    const char *error = hostile_find(&dev, VIRTIO_CONSOLE_DEVICE_ID);
    if (!error) error = hostile_negotiate(&dev, VIRTIO_F_VERSION_1);
    if (!error) error = hostile_setup_ring(&dev, VIRTIO_CONSOLE_RECEIVE_QUEUE, &receive);
    if (!error) error = hostile_setup_ring(&dev, VIRTIO_CONSOLE_TRANSMIT_QUEUE, &transmit);
    if (error) hostile_fail(error);
    hostile_driver_ok(&dev);
    hostile_post_empty(&receive);
    virtio_write(&dev, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_CONSOLE_RECEIVE_QUEUE);
    serial_puts("flooding\r\n");
    hostile_start_heartbeat();
    hostile_repost_forever(&dev, VIRTIO_CONSOLE_RECEIVE_QUEUE, &receive, 0);
}
