/* "No flushed write is lost": writes numbered 4 KiB blocks to virtio-blk disk 0 (virtio-mmio) in
 * order, block n at sector 8n, one request at a time; after every DURABILITY_FLUSH_EVERY writes
 * it sends a FLUSH (§5.2.6.2) and, once that completed with OK, prints "flushed N": blocks 0..N
 * are durable. durability.sh kills kvmlet with SIGKILL at a random moment and
 * durability_check.py checks that every block up to the last "flushed N" is in the image, intact.
 *
 * Block n is 64 self-describing 64-byte lines (8 per 512-byte sector), so a checker can tell a
 * written line from a zero (never written), torn, corrupt or misplaced one:
 *   0   u64  magic "kvmlDUR1"
 *   8   u64  n, the block's sequence number (= its index on the disk)
 *   16  u64  the line's index in its block, 0..63
 *   24  u64  check(n, line): a hash of the two fields before, so a line is recognised without
 *            knowing which block should be there
 *   32  u64  x4  filler(line, word), the same in every block
 * durability_check.py builds the same bytes and compares whole blocks. This host emulates guest
 * kernel code an instruction at a time (README.md), so the buffer is filled once and each block
 * rewrites only its 128 words of n and check. Odd blocks go out as two 2 KiB descriptors, even
 * ones as one (with cache=none: kvmlet's bounce path and its direct path). Blocks are never
 * overwritten: when the disk is full the guest flushes, reports, prints "durability: disk full
 * after B blocks" and halts (kvmlet exits 0).
 *
 * Lines: "durability: blocks=B block_bytes=4096 flush_every=K", then "flushed N" per flush; on an
 * error "durability: FAIL <what> (block N)" and a reset. A request is waited for up to 60 s of
 * real time (an fdatasync on a busy host can take seconds). */
#include "guest.h"
#include "lapic.h"
#include "virtio.h"

enum {
    SECTOR = VIRTIO_BLK_SECTOR_SIZE,
    BLOCK_BYTES = 4096,
    SECTORS_PER_BLOCK = BLOCK_BYTES / SECTOR,
    LINE_WORDS = 8,
    LINES = BLOCK_BYTES / 8 / LINE_WORDS,
    DURABILITY_FLUSH_EVERY = 8,
    REQUEST_TIMEOUT_MS = 60000,
};
#define DURABILITY_MAGIC 0x315255446c6d766bull /* "kvmlDUR1", little-endian */
#define CHECK_SEQ_FACTOR 0x9e3779b97f4a7c15ull
#define CHECK_LINE_FACTOR 0xc2b2ae3d27d4eb4full
#define FILLER_FACTOR 0xd6e8feb86659fd93ull

static struct virtq queue;
static uint64_t block[LINES][LINE_WORDS] __attribute__((aligned(4096)));
static struct {
    struct virtio_blk_req_header header;
    uint8_t status;
} request;

__attribute__((noreturn)) static void fail(const char *what, uint64_t seq)
{
    serial_puts("durability: FAIL ");
    serial_puts(what);
    serial_puts(" (block ");
    serial_put_dec(seq);
    serial_puts(")\r\n");
    guest_reset();
}

/* The words no block changes: magic, line index, filler (x86 is little-endian, as the format). */
static void fill_fixed(void)
{
    for (uint64_t line = 0; line < LINES; ++line) {
        block[line][0] = DURABILITY_MAGIC;
        block[line][2] = line;
        for (uint64_t w = 4; w < LINE_WORDS; ++w) block[line][w] = (line * LINE_WORDS + w) * FILLER_FACTOR;
    }
}

static void fill_block(uint64_t seq)
{
    uint64_t seq_hash = seq * CHECK_SEQ_FACTOR;
    for (uint64_t line = 0; line < LINES; ++line) {
        block[line][1] = seq;
        block[line][3] = seq_hash ^ (line + 1) * CHECK_LINE_FACTOR;
    }
}

/* One request: header, `count` data buffers, status byte; waits up to REQUEST_TIMEOUT_MS. */
static void submit(struct virtio_dev *disk, uint32_t type, uint64_t sector, const struct virtq_buf *data,
                   int count, uint64_t seq)
{
    struct virtq_buf bufs[4];
    request.header = (struct virtio_blk_req_header){type, 0, sector};
    request.status = VIRTIO_BLK_S_NOT_WRITTEN;
    bufs[0] = (struct virtq_buf){&request.header, sizeof request.header, 0};
    for (int i = 0; i < count; ++i) bufs[1 + i] = data[i];
    bufs[1 + count] = (struct virtq_buf){&request.status, 1, 1};
    const char *error = virtq_add_chain(disk->queue, bufs, count + 2);
    if (error) fail(error, seq);
    virtq_publish(disk, 0);
    lapic_timer_start();
    while (!virtq_has_used(disk->queue)) {
        if (lapic_timer_elapsed_ms() >= REQUEST_TIMEOUT_MS) fail("request not returned within 60 s", seq);
    }
    uint32_t used_len;
    error = virtq_pop_used(disk->queue, 0, &used_len);
    if (error) fail(error, seq);
    if (*(volatile uint8_t *)&request.status != VIRTIO_BLK_S_OK) {
        fail(type == VIRTIO_BLK_T_FLUSH ? "flush status not OK" : "write status not OK", seq);
    }
}

static void write_block(struct virtio_dev *disk, uint64_t seq)
{
    fill_block(seq);
    uint8_t *bytes = (uint8_t *)block;
    struct virtq_buf halves[2] = {{bytes, BLOCK_BYTES / 2, 0}, {bytes + BLOCK_BYTES / 2, BLOCK_BYTES / 2, 0}};
    struct virtq_buf whole = {block, BLOCK_BYTES, 0};
    if (seq & 1) {
        submit(disk, VIRTIO_BLK_T_OUT, seq * SECTORS_PER_BLOCK, halves, 2, seq);
    } else {
        submit(disk, VIRTIO_BLK_T_OUT, seq * SECTORS_PER_BLOCK, &whole, 1, seq);
    }
}

/* Blocks 0..last are durable once this returns; the line is out before the next write starts. */
static void flush(struct virtio_dev *disk, uint64_t last)
{
    submit(disk, VIRTIO_BLK_T_FLUSH, 0, 0, 0, last);
    serial_puts("flushed ");
    serial_put_dec(last);
    serial_puts("\r\n");
}

void guest_main(void)
{
    struct virtio_dev disk;
    const char *error = virtio_probe(&disk, virtio_mmio_window(0), VIRTIO_BLK_DEVICE_ID);
    if (!error) error = virtio_init(&disk, VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH, &queue);
    if (error) fail(error, 0);
    if (!(disk.driver_features & VIRTIO_BLK_F_FLUSH)) fail("the disk does not offer FLUSH", 0);
    fill_fixed();

    uint64_t blocks = virtio_config_read64(&disk, VIRTIO_BLK_CONFIG_CAPACITY) / SECTORS_PER_BLOCK;
    serial_puts("durability: blocks=");
    serial_put_dec(blocks);
    serial_puts(" block_bytes=4096 flush_every=");
    serial_put_dec(DURABILITY_FLUSH_EVERY);
    serial_puts("\r\n");
    if (blocks == 0) fail("the disk is smaller than one block", 0);

    for (uint64_t seq = 0; seq < blocks; ++seq) {
        write_block(&disk, seq);
        if ((seq + 1) % DURABILITY_FLUSH_EVERY == 0 || seq + 1 == blocks) flush(&disk, seq);
    }
    serial_puts("durability: disk full after ");
    serial_put_dec(blocks);
    serial_puts(" blocks\r\n");
    guest_halt();
}
