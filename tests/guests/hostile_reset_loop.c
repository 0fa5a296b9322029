/* Hostile: a reset loop (run by hostile.sh with --rng --transport mmio --cpus 2). Forever: reset
 * virtio-rng, negotiate, give queue 0 areas outside RAM, set DRIVER_OK (which kvmlet must refuse
 * with DEVICE_NEEDS_RESET), while vCPU 1 prints its heartbeat and the round count on COM1. kvmlet
 * may say what is wrong, but not once per round. */
#include "guest.h"
#include "hostile.h"

/* 16 TiB: far beyond any RAM a test gives the guest, and still a valid 48-bit address. */
#define OUTSIDE_RAM 0x100000000000ull

static void bad_round(struct virtio_dev *dev)
{
    const char *error = hostile_negotiate(dev, VIRTIO_F_VERSION_1);
    if (!error) error = hostile_setup_queue(dev, 0, OUTSIDE_RAM, OUTSIDE_RAM + 0x1000, OUTSIDE_RAM + 0x2000);
    if (error) hostile_fail(error);
    hostile_driver_ok(dev);
    hostile_rounds++;
}

void guest_main(void)
{
    struct virtio_dev dev;
    const char *error = hostile_find(&dev, VIRTIO_RNG_DEVICE_ID);
    if (error) hostile_fail(error);
    bad_round(&dev);
    if (!(virtio_read(&dev, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET)) {
        hostile_fail("DRIVER_OK with queue 0 outside RAM did not set DEVICE_NEEDS_RESET");
    }
    serial_puts("flooding\r\n");
    hostile_start_heartbeat();
    for (;;) bad_round(&dev);
}
