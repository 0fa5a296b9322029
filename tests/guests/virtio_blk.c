/* virtio-blk over virtio-mmio, end to end. Expects two disks (virtio_blk.sh makes them):
 *   device 0: writable, sector 0 starting with "kvmlet-disk-0001", id=testdisk0 or any;
 *   device 1: read-only, sector 0 starting with "kvmlet-disk-0002".
 * Checks the transport's identity registers, reads the capacity and sector 0, writes a pattern
 * to sectors 1-8 and to the last sector and reads it back (virtio_blk.sh then finds it in the
 * image file), flushes, prints the GET_ID string, and expects IOERR past the end, UNSUPP for an
 * unknown request type and a refused write on the read-only disk. Prints "virtio-blk: ok" or
 * "virtio-blk: FAIL <what>", then resets. */
#include "guest.h"
#include "virtio.h"

enum { SECTOR = VIRTIO_BLK_SECTOR_SIZE, SECTORS_AT_ONCE = 8, UNKNOWN_REQUEST_TYPE = 0x7f };

static struct virtq queues[2];
static uint8_t buffer[SECTORS_AT_ONCE * SECTOR] __attribute__((aligned(4096)));

/* The bytes the test writes; virtio_blk.sh computes the same on the host. */
static uint8_t pattern(uint64_t sector, uint32_t offset)
{
    return (uint8_t)(sector * 13 + offset);
}

static void print(const char *text)
{
    serial_puts("virtio-blk: ");
    serial_puts(text);
}

__attribute__((noreturn)) static void fail(const char *what)
{
    print("FAIL ");
    serial_puts(what);
    serial_puts("\r\n");
    guest_reset();
}

static void fail_if(const char *error)
{
    if (error) fail(error);
}

static void expect_value(uint64_t got, uint64_t want, const char *what)
{
    if (got == want) return;
    print("FAIL ");
    serial_puts(what);
    serial_puts(": got ");
    serial_put_dec(got);
    serial_puts(", want ");
    serial_put_dec(want);
    serial_puts("\r\n");
    guest_reset();
}

/* A read or write of `len` bytes at `sector`, the data split into two descriptors when it spans
 * more than one sector (so chains of four are exercised too). Returns the status byte. */
static uint8_t transfer(struct virtio_dev *disk, uint32_t type, uint64_t sector, uint32_t len,
                        uint32_t *used_len)
{
    int writable = type == VIRTIO_BLK_T_IN;
    uint32_t first = len > SECTOR ? len / 2 / SECTOR * SECTOR : len;
    struct virtq_buf data[2] = {
        {buffer, first, writable},
        {buffer + first, len - first, writable},
    };
    int count = len == 0 ? 0 : first < len ? 2 : 1;
    uint8_t status;
    fail_if(virtio_blk_request(disk, type, sector, data, count, &status, used_len));
    return status;
}

static void fill(uint32_t len, uint8_t byte)
{
    volatile uint8_t *p = buffer; /* volatile: no libc memset to call */
    for (uint32_t i = 0; i < len; ++i) p[i] = byte;
}

static void write_and_read_back(struct virtio_dev *disk, uint64_t first, uint32_t count)
{
    uint32_t len = count * SECTOR, used_len;
    for (uint32_t s = 0; s < count; ++s) {
        for (uint32_t i = 0; i < SECTOR; ++i) {
            buffer[s * SECTOR + i] = pattern(first + s, i);
        }
    }
    expect_value(transfer(disk, VIRTIO_BLK_T_OUT, first, len, &used_len), VIRTIO_BLK_S_OK, "write status");
    expect_value(used_len, 1, "used length of a write (the status byte)");

    fill(len, 0);
    expect_value(transfer(disk, VIRTIO_BLK_T_IN, first, len, &used_len), VIRTIO_BLK_S_OK, "read status");
    expect_value(used_len, len + 1, "used length of a read (data and status)");
    for (uint32_t s = 0; s < count; ++s) {
        for (uint32_t i = 0; i < SECTOR; ++i) {
            expect_value(buffer[s * SECTOR + i], pattern(first + s, i), "a byte read back");
        }
    }
    print(count == 1 ? "wrote and read back sector " : "wrote and read back sectors ");
    serial_put_dec(first);
    if (count > 1) {
        serial_puts("-");
        serial_put_dec(first + count - 1);
    }
    serial_puts("\r\n");
}

static void check_marker(struct virtio_dev *disk, const char *marker)
{
    uint32_t used_len;
    fill(SECTOR, 0);
    expect_value(transfer(disk, VIRTIO_BLK_T_IN, 0, SECTOR, &used_len), VIRTIO_BLK_S_OK,
                 "sector 0 read status");
    for (int i = 0; marker[i]; ++i) {
        if (buffer[i] != (uint8_t)marker[i]) fail("sector 0 does not start with the image's marker");
    }
    print("sector 0 starts with ");
    serial_puts(marker);
    serial_puts("\r\n");
}

static void print_id(struct virtio_dev *disk)
{
    uint8_t id[VIRTIO_BLK_ID_BYTES + 1] = {0};
    struct virtq_buf data = {id, VIRTIO_BLK_ID_BYTES, 1};
    uint8_t status;
    uint32_t used_len;
    fail_if(virtio_blk_request(disk, VIRTIO_BLK_T_GET_ID, 0, &data, 1, &status, &used_len));
    expect_value(status, VIRTIO_BLK_S_OK, "GET_ID status");
    print("id=");
    /* §5.2.6: the string is NUL-padded, without a NUL when it is 20 bytes long. */
    for (int i = 0; i < VIRTIO_BLK_ID_BYTES && id[i]; ++i) {
        serial_putc(id[i] >= 0x20 && id[i] < 0x7f ? (char)id[i] : '?');
    }
    serial_puts("\r\n");
}

static void expect_refused(struct virtio_dev *disk, uint32_t type, uint64_t sector, uint32_t len,
                           uint8_t want, const char *what)
{
    uint32_t used_len;
    expect_value(transfer(disk, type, sector, len, &used_len), want, what);
    print(what);
    serial_puts(": refused\r\n");
}

static void check_writable_disk(struct virtio_dev *disk)
{
    uint32_t used_len;
    fail_if(virtio_probe(disk, virtio_mmio_window(0), VIRTIO_BLK_DEVICE_ID));
    fail_if(virtio_init(disk, VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_RO, &queues[0]));
    print("device features=");
    serial_put_hex(disk->device_features);
    serial_puts("\r\n");
    if (disk->device_features & VIRTIO_BLK_F_RO) fail("disk 0 offers RO");
    if (!(disk->device_features & VIRTIO_BLK_F_FLUSH)) fail("disk 0 does not offer FLUSH");

    uint64_t capacity = virtio_config_read64(disk, VIRTIO_BLK_CONFIG_CAPACITY);
    print("capacity=");
    serial_put_dec(capacity);
    serial_puts("\r\n");
    if (capacity < 2 * SECTORS_AT_ONCE) fail("capacity too small for this test");

    check_marker(disk, "kvmlet-disk-0001");
    write_and_read_back(disk, 1, SECTORS_AT_ONCE);
    write_and_read_back(disk, capacity - 1, 1);

    uint8_t status;
    fail_if(virtio_blk_request(disk, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &status, &used_len));
    expect_value(status, VIRTIO_BLK_S_OK, "FLUSH status");
    print("flush ok\r\n");
    print_id(disk);

    expect_refused(disk, VIRTIO_BLK_T_IN, capacity, SECTOR, VIRTIO_BLK_S_IOERR, "read at capacity");
    expect_refused(disk, VIRTIO_BLK_T_IN, capacity - 1, 2 * SECTOR, VIRTIO_BLK_S_IOERR,
                   "read across the end");
    expect_refused(disk, VIRTIO_BLK_T_OUT, capacity, SECTOR, VIRTIO_BLK_S_IOERR, "write at capacity");
    expect_refused(disk, UNKNOWN_REQUEST_TYPE, 0, 0, VIRTIO_BLK_S_UNSUPP, "unknown request type");
}

static void check_read_only_disk(struct virtio_dev *disk)
{
    fail_if(virtio_probe(disk, virtio_mmio_window(1), VIRTIO_BLK_DEVICE_ID));
    fail_if(virtio_init(disk, VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_RO, &queues[1]));
    if (!(disk->device_features & VIRTIO_BLK_F_RO)) fail("disk 1 (readonly) does not offer RO");
    check_marker(disk, "kvmlet-disk-0002");

    /* §5.2.6.1: a device offering RO fails writes with IOERR; accept UNSUPP too. */
    uint32_t used_len;
    for (uint32_t i = 0; i < SECTOR; ++i) buffer[i] = pattern(1, i);
    uint8_t status = transfer(disk, VIRTIO_BLK_T_OUT, 1, SECTOR, &used_len);
    if (status != VIRTIO_BLK_S_IOERR && status != VIRTIO_BLK_S_UNSUPP) {
        expect_value(status, VIRTIO_BLK_S_IOERR, "status of a write to the read-only disk");
    }
    print("read-only disk: write refused with status ");
    serial_put_dec(status);
    serial_puts("\r\n");
}

void guest_main(void)
{
    struct virtio_dev disk, read_only;
    check_writable_disk(&disk);
    check_read_only_disk(&read_only);
    print("ok\r\n");
    guest_reset();
}
