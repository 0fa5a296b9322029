/* A hostile virtio-blk driver. Expects two writable disks (virtio_blk.sh makes them), sector 0 of
 * device 0 starting with "kvmlet-disk-0001".
 *   1. On disk 0 it submits malformed chains: a descriptor whose next is itself, a cycle of two,
 *      and a next index beyond the queue. kvmlet must hand each back as used with length 0 and
 *      keep the queue working (a read of sector 0 afterwards).
 *   2. On disk 1, ordinary I/O must work: sectors 1-4 written and read back.
 *   3. On disk 0 it moves avail.idx 1000 entries ahead of the device: the queue is broken, so
 *      the device must set DEVICE_NEEDS_RESET and raise a configuration change interrupt; disk 1
 *      must not care; a reset and a new initialisation must bring disk 0 back.
 * Prints one line per step, then "virtio-blk-loop: ok" or "virtio-blk-loop: FAIL <what>", and
 * resets. */
#include "guest.h"
#include "virtio.h"

enum { SECTOR = VIRTIO_BLK_SECTOR_SIZE, SECTORS = 4, RUNAWAY_AVAIL_ENTRIES = 1000 };

static struct virtq queues[2];
static uint8_t buffer[SECTORS * SECTOR] __attribute__((aligned(4096)));
static struct virtio_blk_req_header bad_header;

/* The bytes written to disk 1; virtio_blk.sh computes the same on the host. */
static uint8_t pattern(uint64_t sector, uint32_t offset)
{
    return (uint8_t)(sector * 13 + offset);
}

__attribute__((noreturn)) static void fail(const char *what)
{
    serial_puts("virtio-blk-loop: FAIL ");
    serial_puts(what);
    serial_puts("\r\n");
    guest_reset();
}

static void fail_if(const char *error)
{
    if (error) fail(error);
}

static void say(const char *line)
{
    serial_puts(line);
    serial_puts("\r\n");
}

static uint8_t transfer(struct virtio_dev *disk, uint32_t type, uint64_t sector, uint32_t len)
{
    struct virtq_buf data = {buffer, len, type == VIRTIO_BLK_T_IN};
    uint8_t status;
    uint32_t used_len;
    fail_if(virtio_blk_request(disk, type, sector, &data, 1, &status, &used_len));
    return status;
}

/* Publishes the chain already written at descriptor 0 and expects it back with length 0. */
static void expect_rejected(struct virtio_dev *disk, const char *what)
{
    uint32_t len;
    virtq_publish(disk, 0);
    fail_if(virtq_wait_used(disk, 0, &len));
    serial_puts(what);
    serial_puts(": returned len=");
    serial_put_dec(len);
    serial_puts("\r\n");
    if (len != 0) fail("a malformed chain came back with a non-zero length");
}

static void set_desc(struct virtio_dev *disk, int index, uint16_t next)
{
    struct virtq_desc *desc = &disk->queue->desc[index];
    desc->addr = (uintptr_t)&bad_header;
    desc->len = sizeof bad_header;
    desc->flags = VIRTQ_DESC_F_NEXT;
    desc->next = next;
}

static void check_marker(struct virtio_dev *disk)
{
    static const char marker[] = "kvmlet-disk-0001";
    if (transfer(disk, VIRTIO_BLK_T_IN, 0, SECTOR) != VIRTIO_BLK_S_OK) fail("disk 0: read of sector 0");
    for (int i = 0; marker[i]; ++i) {
        if (buffer[i] != (uint8_t)marker[i]) fail("disk 0: sector 0 does not start with kvmlet-disk-0001");
    }
}

static void malformed_chains(struct virtio_dev *disk)
{
    bad_header.type = VIRTIO_BLK_T_IN;
    set_desc(disk, 0, 0);
    expect_rejected(disk, "loop");
    set_desc(disk, 0, 1);
    set_desc(disk, 1, 0);
    expect_rejected(disk, "loop of two");
    set_desc(disk, 0, VIRTQ_SIZE);
    expect_rejected(disk, "next out of range");
    check_marker(disk);
    say("disk 0 after malformed chains: ok");
}

static void write_and_read_back(struct virtio_dev *disk)
{
    for (uint32_t i = 0; i < sizeof buffer; ++i) buffer[i] = pattern(1 + i / SECTOR, i % SECTOR);
    if (transfer(disk, VIRTIO_BLK_T_OUT, 1, sizeof buffer) != VIRTIO_BLK_S_OK) fail("second disk: write");
    volatile uint8_t *p = buffer; /* volatile: no libc memset to call */
    for (uint32_t i = 0; i < sizeof buffer; ++i) p[i] = 0;
    if (transfer(disk, VIRTIO_BLK_T_IN, 1, sizeof buffer) != VIRTIO_BLK_S_OK) fail("second disk: read");
    for (uint32_t i = 0; i < sizeof buffer; ++i) {
        if (buffer[i] != pattern(1 + i / SECTOR, i % SECTOR)) {
            fail("second disk: data read back differs");
        }
    }
}

static void runaway_avail_index(struct virtio_dev *disk)
{
    volatile struct virtq_avail *avail = &disk->queue->avail;
    avail->idx = (uint16_t)(avail->idx + RUNAWAY_AVAIL_ENTRIES);
    virtio_write(disk, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    if (!virtio_wait_status(disk, VIRTIO_STATUS_DEVICE_NEEDS_RESET)) fail("disk 0: no DEVICE_NEEDS_RESET");
    say("disk 0: device needs reset");
    /* §2.1.2: with DRIVER_OK set, DEVICE_NEEDS_RESET comes with a configuration change notification. */
    uint32_t interrupts = virtio_read(disk, VIRTIO_MMIO_INTERRUPT_STATUS);
    if (!(interrupts & VIRTIO_MMIO_INT_CONFIG)) fail("disk 0: no configuration change interrupt");
    virtio_write(disk, VIRTIO_MMIO_INTERRUPT_ACK, interrupts);
    say("disk 0: configuration change interrupt");
}

void guest_main(void)
{
    struct virtio_dev disk0, disk1;
    fail_if(virtio_probe(&disk0, virtio_mmio_window(0), VIRTIO_BLK_DEVICE_ID));
    fail_if(virtio_init(&disk0, VIRTIO_F_VERSION_1, &queues[0]));
    fail_if(virtio_probe(&disk1, virtio_mmio_window(1), VIRTIO_BLK_DEVICE_ID));
    fail_if(virtio_init(&disk1, VIRTIO_F_VERSION_1, &queues[1]));

    malformed_chains(&disk0);
    write_and_read_back(&disk1);
    say("second disk: ok");

    runaway_avail_index(&disk0);
    write_and_read_back(&disk1);
    say("second disk after disk 0 broke: ok");

    fail_if(virtio_init(&disk0, VIRTIO_F_VERSION_1, &queues[0]));
    check_marker(&disk0);
    say("disk 0 after reset: ok");

    say("virtio-blk-loop: ok");
    guest_reset();
}
