/* The guest of the virtio snapshot tests (tests/api/snapshot.py, cases rng, devices and net):
 * drives a virtio-rng and, when there are, a virtio-console, a virtio-blk disk and a virtio-net
 * over virtio-mmio (the first four windows, in kvmlet's order: disk, net, console, rng), polled,
 * with EVENT_IDX, one request at a time, for ever. It prints "ready" and the devices it found,
 * then for the n-th round writes sector n of the disk (the bytes of sector_pattern) and reads it
 * back, sends one broadcast frame of EtherType 0x88b5 whose payload is "round" and n (u64,
 * little-endian) through the net's transmit queue, takes 16 random bytes, sends "hvc <n>" through
 * the console's transmit queue (port 0: the host's stdout), and prints "rng <n>" on COM1. Every request must come back whole, and as the used
 * entry its count says (the device's used.idx must equal the guest's count): a device restored
 * from a snapshot with its queue indices lost or repeated is a "FAIL" line. Interrupts stay off. */
#include "guest.h"
#include "virtio.h"

enum {
    VIRTIO_CONSOLE_DEVICE_ID = 3,
    VIRTIO_RNG_DEVICE_ID = 4,
    VIRTIO_NET_DEVICE_ID = 1,
    CONSOLE_TRANSMIT_QUEUE = 1,
    NET_TRANSMIT_QUEUE = 1, /* virtio 1.2 §5.1.2: receiveq 0, transmitq 1 */
    NET_HEADER_BYTES = 12,  /* §5.1.6: struct virtio_net_hdr with VERSION_1 */
    ETH_FRAME_BYTES = 60,   /* the shortest Ethernet frame without its FCS */
    REQUEST_BYTES = 16,
    WAIT_MS = 5000,
    WINDOWS = 4,
    SECTOR_MAGIC = 0x6e6f6974, /* "tion": what tests/api/snapshot.py looks for in each sector */
};
#define VIRTIO_F_RING_EVENT_IDX (1ull << 29)

static struct virtq disk_queue;
static struct virtq rng_queue;
static struct virtq console_queues[2];
static struct virtq net_queues[2];
static uint8_t net_packet[NET_HEADER_BYTES + ETH_FRAME_BYTES];
static uint8_t entropy[REQUEST_BYTES];
static char line[32];
static uint8_t sector[VIRTIO_BLK_SECTOR_SIZE] __attribute__((aligned(512)));
static uint8_t sector_back[VIRTIO_BLK_SECTOR_SIZE] __attribute__((aligned(512)));

__attribute__((noreturn)) static void fail(const char *why, uint64_t n)
{
    serial_puts("FAIL ");
    serial_puts(why);
    serial_puts(" at round ");
    serial_put_dec(n);
    serial_puts("\r\n");
    guest_halt();
}

/* The device of type `id` in one of the first windows; 0 when there is none. */
static int find(struct virtio_dev *dev, uint32_t id)
{
    for (unsigned i = 0; i < WINDOWS; ++i) {
        if (!virtio_probe(dev, virtio_mmio_window(i), id)) return 1;
    }
    return 0;
}

static int all_zero(const volatile uint8_t *bytes, int count)
{
    for (int i = 0; i < count; ++i) {
        if (bytes[i] != 0) return 0;
    }
    return 1;
}

static void take_entropy(struct virtio_dev *rng, uint64_t n)
{
    for (int i = 0; i < REQUEST_BYTES; ++i) ((volatile uint8_t *)entropy)[i] = 0;
    struct virtq_buf buf = {entropy, REQUEST_BYTES, 1};
    uint32_t len = 0;
    const char *error = virtq_transfer(rng, &buf, 1, &len);
    if (error) fail(error, n);
    if (len != REQUEST_BYTES) fail("a short rng request", n);
    if (*(volatile uint16_t *)&rng_queue.used.idx != (uint16_t)n) fail("the rng used index is not the count", n);
    if (all_zero(entropy, REQUEST_BYTES)) fail("no random bytes", n);
}

/* Sector n's bytes: the magic (u32), n (u64), then (n + i) & 0xff for byte i. */
static void sector_pattern(uint8_t *bytes, uint64_t n)
{
    for (int i = 0; i < VIRTIO_BLK_SECTOR_SIZE; ++i) bytes[i] = (uint8_t)(n + (uint64_t)i);
    uint32_t magic = SECTOR_MAGIC;
    for (int i = 0; i < 4; ++i) bytes[i] = (uint8_t)(magic >> (8 * i));
    for (int i = 0; i < 8; ++i) bytes[4 + i] = (uint8_t)(n >> (8 * i));
}

static void disk_request(struct virtio_dev *disk, uint32_t type, uint64_t n, void *buf, uint16_t count)
{
    struct virtq_buf data = {buf, VIRTIO_BLK_SECTOR_SIZE, type == VIRTIO_BLK_T_IN};
    uint8_t status = 0;
    uint32_t len = 0;
    const char *error = virtio_blk_request(disk, type, n, &data, 1, &status, &len);
    if (error) fail(error, n);
    if (status != VIRTIO_BLK_S_OK) fail("a disk request failed", n);
    if (*(volatile uint16_t *)&disk_queue.used.idx != count) fail("the disk used index is not the count", n);
}

static void write_and_read_back(struct virtio_dev *disk, uint64_t n)
{
    sector_pattern(sector, n);
    disk_request(disk, VIRTIO_BLK_T_OUT, n, sector, (uint16_t)(2 * n - 1));
    for (int i = 0; i < VIRTIO_BLK_SECTOR_SIZE; ++i) ((volatile uint8_t *)sector_back)[i] = 0;
    disk_request(disk, VIRTIO_BLK_T_IN, n, sector_back, (uint16_t)(2 * n));
    for (int i = 0; i < VIRTIO_BLK_SECTOR_SIZE; ++i) {
        if (((volatile uint8_t *)sector_back)[i] != sector[i]) fail("a sector read back differs", n);
    }
}

/* "hvc <n>\r\n" into line[]; returns its length. */
static uint32_t format_line(uint64_t n)
{
    uint32_t at = 0;
    for (const char *p = "hvc "; *p; ++p) line[at++] = *p;
    at += (uint32_t)format_dec(&line[at], n);
    line[at++] = '\r';
    line[at++] = '\n';
    return at;
}

static void send_line(struct virtio_dev *console, uint64_t n)
{
    struct virtq *q = &console_queues[CONSOLE_TRANSMIT_QUEUE];
    struct virtq_buf buf = {line, format_line(n), 0};
    const char *error = virtq_add_chain(q, &buf, 1);
    if (error) fail(error, n);
    virtq_publish_on(console, CONSOLE_TRANSMIT_QUEUE, q, 0);
    if (!virtq_poll_used(q, WAIT_MS)) fail("timed out waiting for the console", n);
    uint32_t len = 0;
    error = virtq_pop_used(q, 0, &len);
    if (error) fail(error, n);
    if (*(volatile uint16_t *)&q->used.idx != (uint16_t)n) fail("the console used index is not the count", n);
}

/* Round n's frame: broadcast, from 06:00:00:00:00:01 (snapshot.py does not check it), EtherType
 * 0x88b5 (IEEE 802 Local Experimental 1), "round" and n; the header asks for no offload. */
static void send_frame(struct virtio_dev *net, uint64_t n)
{
    static const char tag[] = "round";
    uint8_t *p = net_packet;
    for (int i = 0; i < (int)sizeof net_packet; ++i) p[i] = 0;
    uint8_t *frame = p + NET_HEADER_BYTES;
    for (int i = 0; i < 6; ++i) frame[i] = 0xff;
    frame[6] = 0x06;
    frame[11] = 0x01;
    frame[12] = 0x88;
    frame[13] = 0xb5;
    for (int i = 0; i < 5; ++i) frame[14 + i] = (uint8_t)tag[i];
    for (int i = 0; i < 8; ++i) frame[19 + i] = (uint8_t)(n >> (8 * i));
    struct virtq *q = &net_queues[NET_TRANSMIT_QUEUE];
    struct virtq_buf buf = {net_packet, sizeof net_packet, 0};
    const char *error = virtq_add_chain(q, &buf, 1);
    if (error) fail(error, n);
    virtq_publish_on(net, NET_TRANSMIT_QUEUE, q, 0);
    if (!virtq_poll_used(q, WAIT_MS)) fail("timed out waiting for the net's transmit queue", n);
    uint32_t len = 0;
    error = virtq_pop_used(q, 0, &len);
    if (error) fail(error, n);
    if (*(volatile uint16_t *)&q->used.idx != (uint16_t)n) fail("the net used index is not the count", n);
}

void guest_main(void)
{
    struct virtio_dev rng, console, disk, net;
    uint64_t const wanted = VIRTIO_F_VERSION_1 | VIRTIO_F_RING_EVENT_IDX;
    if (!find(&rng, VIRTIO_RNG_DEVICE_ID)) fail("no virtio-rng", 0);
    const char *error = virtio_init(&rng, wanted, &rng_queue);
    if (error) fail(error, 0);
    int has_console = find(&console, VIRTIO_CONSOLE_DEVICE_ID);
    if (has_console) {
        error = virtio_init_queues(&console, wanted, console_queues, 2);
        if (error) fail(error, 0);
    }
    int has_disk = find(&disk, VIRTIO_BLK_DEVICE_ID);
    if (has_disk) {
        error = virtio_init(&disk, wanted | VIRTIO_BLK_F_FLUSH, &disk_queue);
        if (error) fail(error, 0);
    }
    int has_net = find(&net, VIRTIO_NET_DEVICE_ID);
    if (has_net) {
        error = virtio_init_queues(&net, wanted, net_queues, 2);
        if (error) fail(error, 0);
    }
    serial_puts("ready: rng");
    if (has_console) serial_puts(", console");
    if (has_disk) serial_puts(", disk");
    if (has_net) serial_puts(", net");
    serial_puts("\r\n");
    for (uint64_t n = 1;; ++n) {
        if (has_disk) write_and_read_back(&disk, n);
        if (has_net) send_frame(&net, n);
        take_entropy(&rng, n);
        if (has_console) send_line(&console, n);
        serial_puts("rng ");
        serial_put_dec(n);
        serial_puts("\r\n");
    }
}
