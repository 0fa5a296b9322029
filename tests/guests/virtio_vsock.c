/* virtio-vsock over virtio-pci, polled: a guest that listens on vsock port 1234 and echoes.
 * Expects kvmlet's default PCI transport with `--vsock cid=N,uds=PATH` and `--console serial`;
 * virtio_vsock.sh is the host side (CONNECT 1234 on PATH, data, EOF):
 *   1. finds the socket device (1af4:1053) on bus 0 and its virtio capabilities in BAR 0;
 *   2. initialises it with VERSION_1 (and F_STREAM when offered), the rx (0), tx (1) and event
 *      (2) queues without interrupts, and prints the guest CID from the configuration (§5.10.4);
 *   3. posts one rx buffer and prints "listening on port 1234";
 *   4. answers the host's REQUEST with RESPONSE, echoes every RW back (within the host's credit),
 *      answers CREDIT_REQUEST, and on the host's SHUTDOWN sends RST and stops;
 * then prints how many bytes it echoed and "virtio-vsock: ok" (or "virtio-vsock: FAIL <what>"),
 * and resets. One rx buffer and one tx chain in flight at a time. */
#include "guest.h"
#include "virtio_pci_modern.h"

enum {
    VIRTIO_VSOCK_TYPE = 19, /* virtio 1.2 §5.10.1: PCI device 1af4:1053 */

    /* §5.10.2 virtqueues, §5.10.4 device configuration, §5.10.6 operations and flags. */
    VSOCK_RX = 0,
    VSOCK_TX = 1,
    VSOCK_EVENT = 2,
    VSOCK_QUEUES = 3,
    VSOCK_CONFIG_GUEST_CID = 0,
    VSOCK_HOST_CID = 2,
    VSOCK_TYPE_STREAM = 1,
    VSOCK_OP_REQUEST = 1,
    VSOCK_OP_RESPONSE = 2,
    VSOCK_OP_RST = 3,
    VSOCK_OP_SHUTDOWN = 4,
    VSOCK_OP_RW = 5,
    VSOCK_OP_CREDIT_UPDATE = 6,
    VSOCK_OP_CREDIT_REQUEST = 7,

    LISTEN_PORT = 1234,
    PAYLOAD_MAX = 4096,
    BUF_ALLOC = 64 * 1024, /* what we say our buffer holds: we consume at once */
    TIMEOUT_MS = 2000,     /* for what the device does by itself */
    HOST_TIMEOUT_MS = 20000,
    PACKETS_MAX = 10000,
};

#define VIRTIO_VSOCK_F_STREAM (1ull << 0)

/* §5.10.6 struct virtio_vsock_hdr. */
struct vsock_hdr {
    uint64_t src_cid;
    uint64_t dst_cid;
    uint32_t src_port;
    uint32_t dst_port;
    uint32_t len;
    uint16_t type;
    uint16_t op;
    uint32_t flags;
    uint32_t buf_alloc;
    uint32_t fwd_cnt;
} __attribute__((packed));
_Static_assert(sizeof(struct vsock_hdr) == 44, "§5.10.6");

struct vsock_pci {
    struct virtio_pci_dev pci;
    uint64_t cid;
};

/* The one connection: the host's end, our counters, the host's credit. */
struct connection {
    int open;
    uint32_t host_port;
    uint32_t fwd_cnt;        /* bytes we consumed */
    uint32_t tx_cnt;         /* bytes we sent */
    uint32_t peer_buf_alloc; /* the host's */
    uint32_t peer_fwd_cnt;
    uint64_t echoed;
};

static struct virtq queues[VSOCK_QUEUES];
static struct virtq *const queue_list[VSOCK_QUEUES] = {&queues[0], &queues[1], &queues[2]};
static uint8_t rx_buffer[sizeof(struct vsock_hdr) + PAYLOAD_MAX];
static uint8_t tx_buffer[sizeof(struct vsock_hdr) + PAYLOAD_MAX];

__attribute__((noreturn)) static void fail(const char *what)
{
    serial_puts("virtio-vsock: FAIL ");
    serial_puts(what);
    serial_puts("\r\n");
    guest_reset();
}

static void copy(void *to, const void *from, uint32_t len)
{
    volatile uint8_t *d = to;
    const volatile uint8_t *s = from;
    for (uint32_t i = 0; i < len; ++i) d[i] = s[i];
}

/* --- 1. and 2. The device ---------------------------------------------------------------------- */

static void find_device(struct vsock_pci *d)
{
    uint8_t slot = virtio_pci_find(VIRTIO_VSOCK_TYPE);
    if (slot == 0) fail("no virtio-vsock 1af4:1053 on bus 0");
    const char *error = virtio_pci_probe(&d->pci, slot, 0, 0);
    if (error) fail(error);
    serial_puts("virtio-vsock: at 00:");
    serial_put_hex_digits(d->pci.slot, 2);
    serial_puts(".0\r\n");
}

/* §3.1.1 Driver Requirements: Device Initialization; no MSI-X vector (the driver polls). */
static void init_device(struct vsock_pci *d)
{
    const char *error =
        virtio_pci_init(&d->pci, 0, VIRTIO_VSOCK_F_STREAM, queue_list, VSOCK_QUEUES, VIRTIO_PCI_NO_VECTOR);
    if (error) fail(error);
    /* §5.10.4: le64 guest_cid, read as two halves (it does not change). */
    uintptr_t config = virtio_pci_config(&d->pci, VSOCK_CONFIG_GUEST_CID);
    d->cid = mmio_read32(config) | (uint64_t)mmio_read32(config + 4) << 32;
    serial_puts("config: guest cid ");
    serial_put_dec(d->cid);
    serial_puts(", DRIVER_OK\r\n");
}

/* --- 3. and 4. Packets ------------------------------------------------------------------------- */

static uint32_t wait_used(struct virtq *q, uint32_t limit_ms, const char *what)
{
    if (!virtq_poll_used(q, limit_ms)) fail(what);
    uint32_t len;
    const char *error = virtq_pop_used(q, 0, &len);
    if (error) fail(error);
    return len;
}

static void post_rx(const struct vsock_pci *d)
{
    struct virtq_buf buf = {rx_buffer, sizeof rx_buffer, 1};
    const char *error = virtq_add_chain(&queues[VSOCK_RX], &buf, 1);
    if (error) fail(error);
    virtq_make_available(&queues[VSOCK_RX], 0);
    virtio_pci_notify(&d->pci, VSOCK_RX);
}

/* One packet to the host's end of the connection: `op`, and `len` payload bytes from `payload`. */
static void send(const struct vsock_pci *d, struct connection *c, uint16_t op, const uint8_t *payload, uint32_t len)
{
    struct vsock_hdr h = {.src_cid = d->cid,
                          .dst_cid = VSOCK_HOST_CID,
                          .src_port = LISTEN_PORT,
                          .dst_port = c->host_port,
                          .len = len,
                          .type = VSOCK_TYPE_STREAM,
                          .op = op,
                          .flags = 0,
                          .buf_alloc = BUF_ALLOC,
                          .fwd_cnt = c->fwd_cnt};
    copy(tx_buffer, &h, sizeof h);
    if (len) copy(tx_buffer + sizeof h, payload, len);
    struct virtq_buf buf = {tx_buffer, (uint32_t)sizeof h + len, 0};
    const char *error = virtq_add_chain(&queues[VSOCK_TX], &buf, 1);
    if (error) fail(error);
    virtq_make_available(&queues[VSOCK_TX], 0);
    virtio_pci_notify(&d->pci, VSOCK_TX);
    wait_used(&queues[VSOCK_TX], TIMEOUT_MS, "a tx chain did not come back");
    c->tx_cnt += len;
}

static void echo(const struct vsock_pci *d, struct connection *c, const uint8_t *payload, uint32_t len)
{
    c->fwd_cnt += len; /* consumed: copied out below before the rx buffer is reposted */
    static uint8_t data[PAYLOAD_MAX];
    copy(data, payload, len);
    if (c->peer_buf_alloc - (c->tx_cnt - c->peer_fwd_cnt) < len) fail("no credit left to echo into");
    send(d, c, VSOCK_OP_RW, data, len);
    c->echoed += len;
}

/* Handles one packet; returns 0 once the connection is over. */
static int handle(const struct vsock_pci *d, struct connection *c, uint32_t used_len)
{
    struct vsock_hdr h;
    copy(&h, rx_buffer, sizeof h);
    if (used_len < sizeof h || used_len != sizeof h + h.len) fail("a used length does not match its header");
    if (h.src_cid != VSOCK_HOST_CID || h.dst_cid != d->cid || h.type != VSOCK_TYPE_STREAM) {
        fail("a packet with other CIDs or another type");
    }
    c->peer_buf_alloc = h.buf_alloc;
    c->peer_fwd_cnt = h.fwd_cnt;
    if (h.op == VSOCK_OP_REQUEST && !c->open) {
        if (h.dst_port != LISTEN_PORT) fail("a REQUEST for another port");
        c->open = 1;
        c->host_port = h.src_port;
        serial_puts("request from host port ");
        serial_put_dec(h.src_port);
        serial_puts("\r\n");
        send(d, c, VSOCK_OP_RESPONSE, 0, 0);
        return 1;
    }
    if (!c->open || h.src_port != c->host_port || h.dst_port != LISTEN_PORT) fail("a packet for no connection");
    if (h.op == VSOCK_OP_RW) echo(d, c, rx_buffer + sizeof h, h.len);
    else if (h.op == VSOCK_OP_CREDIT_REQUEST) send(d, c, VSOCK_OP_CREDIT_UPDATE, 0, 0);
    else if (h.op == VSOCK_OP_SHUTDOWN || h.op == VSOCK_OP_RST) {
        serial_puts(h.op == VSOCK_OP_RST ? "host reset\r\n" : "host shut down\r\n");
        if (h.op == VSOCK_OP_SHUTDOWN) send(d, c, VSOCK_OP_RST, 0, 0);
        return 0;
    } else if (h.op != VSOCK_OP_CREDIT_UPDATE) fail("an unexpected op");
    return 1;
}

void guest_main(void)
{
    struct vsock_pci dev = {0};
    struct connection c = {0};
    find_device(&dev);
    init_device(&dev);
    post_rx(&dev);
    serial_puts("listening on port 1234\r\n");
    for (int n = 0; n < PACKETS_MAX; ++n) {
        uint32_t len = wait_used(&queues[VSOCK_RX], HOST_TIMEOUT_MS, "no packet from the host in time");
        int more = handle(&dev, &c, len);
        if (!more) break;
        post_rx(&dev);
    }
    serial_puts("echoed ");
    serial_put_dec(c.echoed);
    serial_puts(" bytes\r\n");
    if (c.echoed == 0) fail("nothing was echoed");
    serial_puts("virtio-vsock: ok\r\n");
    guest_reset();
}
