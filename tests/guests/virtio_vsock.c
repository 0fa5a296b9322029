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
#include "lapic.h"
#include "pci.h"
#include "virtio_core.h"

enum {
    VIRTIO_VSOCK_ID = 0x10531af4, /* device << 16 | vendor; virtio 1.2 §4.1.2.1: 0x1040 + type 19 */
    PCI_HEADER_SIZE = 0x40,

    /* §4.1.4 struct virtio_pci_cap. */
    VIRTIO_CAP_CFG_TYPE = 3,
    VIRTIO_CAP_BAR = 4,
    VIRTIO_CAP_OFFSET = 8,
    VIRTIO_CAP_NOTIFY_MULTIPLIER = 16,
    VIRTIO_PCI_CAP_COMMON = 1,
    VIRTIO_PCI_CAP_NOTIFY = 2,
    VIRTIO_PCI_CAP_DEVICE = 4,
    FOUND_ALL = 1 << VIRTIO_PCI_CAP_COMMON | 1 << VIRTIO_PCI_CAP_NOTIFY | 1 << VIRTIO_PCI_CAP_DEVICE,

    /* §4.1.4.3 struct virtio_pci_common_cfg. */
    COMMON_DEVICE_FEATURE_SELECT = 0x00,
    COMMON_DEVICE_FEATURE = 0x04,
    COMMON_DRIVER_FEATURE_SELECT = 0x08,
    COMMON_DRIVER_FEATURE = 0x0c,
    COMMON_DEVICE_STATUS = 0x14,
    COMMON_QUEUE_SELECT = 0x16,
    COMMON_QUEUE_SIZE = 0x18,
    COMMON_QUEUE_ENABLE = 0x1c,
    COMMON_QUEUE_NOTIFY_OFF = 0x1e,
    COMMON_QUEUE_DESC = 0x20,
    COMMON_QUEUE_DRIVER = 0x28,
    COMMON_QUEUE_DEVICE = 0x30,

    /* §5.10.2 virtqueues, §5.10.6 operations and flags. */
    VSOCK_RX = 0,
    VSOCK_TX = 1,
    VSOCK_EVENT = 2,
    VSOCK_QUEUES = 3,
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
    uint8_t slot;
    unsigned found;
    uint64_t bar;
    uint32_t common, notify, device, notify_multiplier;
    uint16_t notify_off[VSOCK_QUEUES];
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
static uint8_t rx_buffer[sizeof(struct vsock_hdr) + PAYLOAD_MAX];
static uint8_t tx_buffer[sizeof(struct vsock_hdr) + PAYLOAD_MAX];

static inline uint8_t mmio_read8(uintptr_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t mmio_read16(uintptr_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t mmio_read32(uintptr_t a) { return *(volatile uint32_t *)a; }
static inline void mmio_write8(uintptr_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void mmio_write16(uintptr_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mmio_write32(uintptr_t a, uint32_t v) { *(volatile uint32_t *)a = v; }

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

static void record_capability(struct vsock_pci *d, uint8_t cap)
{
    uint8_t type = pci_read8(d->slot, (uint8_t)(cap + VIRTIO_CAP_CFG_TYPE));
    if (type != VIRTIO_PCI_CAP_COMMON && type != VIRTIO_PCI_CAP_NOTIFY && type != VIRTIO_PCI_CAP_DEVICE) return;
    if (d->found & (1u << type)) return; /* §4.1.4: the first of a type is the preferred one */
    if (pci_read8(d->slot, (uint8_t)(cap + VIRTIO_CAP_BAR)) != 0) fail("a virtio structure outside BAR 0");
    uint32_t offset = pci_read32(d->slot, (uint8_t)(cap + VIRTIO_CAP_OFFSET));
    d->found |= 1u << type;
    if (type == VIRTIO_PCI_CAP_COMMON) d->common = offset;
    if (type == VIRTIO_PCI_CAP_DEVICE) d->device = offset;
    if (type == VIRTIO_PCI_CAP_NOTIFY) {
        d->notify = offset;
        d->notify_multiplier = pci_read32(d->slot, (uint8_t)(cap + VIRTIO_CAP_NOTIFY_MULTIPLIER));
    }
}

static void find_device(struct vsock_pci *d)
{
    d->slot = 0;
    for (uint8_t slot = 1; slot < PCI_SLOTS && d->slot == 0; ++slot) {
        if (pci_read32(slot, PCI_VENDOR_ID) == VIRTIO_VSOCK_ID) d->slot = slot;
    }
    if (d->slot == 0) fail("no virtio-vsock 1af4:1053 on bus 0");
    int count = 0;
    for (uint8_t cap = pci_first_capability(d->slot); cap != 0; cap = pci_next_capability(d->slot, cap)) {
        if (++count > PCI_CAP_MAX) fail("the capability list loops");
        if (cap < PCI_HEADER_SIZE) fail("a capability points into the header");
        if (pci_read8(d->slot, cap) == PCI_CAP_VENDOR) record_capability(d, cap);
    }
    if (d->found != FOUND_ALL) fail("the common, notify or device configuration capability is missing");
    d->bar = pci_bar_address(d->slot, 0);
    if (d->bar == 0) fail("BAR 0 is not placed");
    serial_puts("virtio-vsock: at 00:");
    serial_put_hex_digits(d->slot, 2);
    serial_puts(".0\r\n");
}

static uintptr_t common(const struct vsock_pci *d, uint32_t field)
{
    return (uintptr_t)(d->bar + d->common + field);
}

static void write_common64(const struct vsock_pci *d, uint32_t field, const volatile void *address)
{
    uint64_t value = (uintptr_t)address;
    mmio_write32(common(d, field), (uint32_t)value);
    mmio_write32(common(d, field + 4), (uint32_t)(value >> 32));
}

static void set_status(const struct vsock_pci *d, uint8_t bits)
{
    uint8_t status = mmio_read8(common(d, COMMON_DEVICE_STATUS));
    mmio_write8(common(d, COMMON_DEVICE_STATUS), (uint8_t)(status | bits));
}

static void negotiate_features(struct vsock_pci *d)
{
    uint64_t offered = 0;
    for (uint32_t word = 0; word < 2; ++word) {
        mmio_write32(common(d, COMMON_DEVICE_FEATURE_SELECT), word);
        offered |= (uint64_t)mmio_read32(common(d, COMMON_DEVICE_FEATURE)) << (32 * word);
    }
    if (!(offered & VIRTIO_F_VERSION_1)) fail("the device does not offer VERSION_1");
    uint64_t accepted = offered & (VIRTIO_F_VERSION_1 | VIRTIO_VSOCK_F_STREAM);
    for (uint32_t word = 0; word < 2; ++word) {
        mmio_write32(common(d, COMMON_DRIVER_FEATURE_SELECT), word);
        mmio_write32(common(d, COMMON_DRIVER_FEATURE), (uint32_t)(accepted >> (32 * word)));
    }
    set_status(d, VIRTIO_STATUS_FEATURES_OK);
    if (!(mmio_read8(common(d, COMMON_DEVICE_STATUS)) & VIRTIO_STATUS_FEATURES_OK)) {
        fail("the device did not accept the features (FEATURES_OK)");
    }
}

static void setup_queue(struct vsock_pci *d, uint16_t index)
{
    struct virtq *q = &queues[index];
    mmio_write16(common(d, COMMON_QUEUE_SELECT), index);
    uint16_t max = mmio_read16(common(d, COMMON_QUEUE_SIZE));
    if (max == 0) fail("a queue is not available");
    virtq_init(q, max, 0);
    mmio_write16(common(d, COMMON_QUEUE_SIZE), q->size);
    write_common64(d, COMMON_QUEUE_DESC, q->desc);
    write_common64(d, COMMON_QUEUE_DRIVER, &q->avail);
    write_common64(d, COMMON_QUEUE_DEVICE, &q->used);
    d->notify_off[index] = mmio_read16(common(d, COMMON_QUEUE_NOTIFY_OFF));
    mmio_write16(common(d, COMMON_QUEUE_ENABLE), 1);
}

static void init_device(struct vsock_pci *d)
{
    uint16_t command = pci_read16(d->slot, PCI_COMMAND);
    pci_write16(d->slot, PCI_COMMAND, command | PCI_COMMAND_MEMORY | PCI_COMMAND_BUS_MASTER);
    mmio_write8(common(d, COMMON_DEVICE_STATUS), 0);
    lapic_timer_start();
    while (mmio_read8(common(d, COMMON_DEVICE_STATUS)) != 0) {
        if (lapic_timer_elapsed_ms() >= TIMEOUT_MS) fail("the device status did not return to 0");
    }
    set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
    set_status(d, VIRTIO_STATUS_DRIVER);
    negotiate_features(d);
    for (uint16_t q = 0; q < VSOCK_QUEUES; ++q) setup_queue(d, q);
    set_status(d, VIRTIO_STATUS_DRIVER_OK);
    if (mmio_read8(common(d, COMMON_DEVICE_STATUS)) & VIRTIO_STATUS_DEVICE_NEEDS_RESET) {
        fail("the device needs a reset");
    }
    /* §5.10.4: le64 guest_cid, read as two halves (it does not change). */
    uintptr_t config = (uintptr_t)(d->bar + d->device);
    d->cid = mmio_read32(config) | (uint64_t)mmio_read32(config + 4) << 32;
    serial_puts("config: guest cid ");
    serial_put_dec(d->cid);
    serial_puts(", DRIVER_OK\r\n");
}

/* --- 3. and 4. Packets ------------------------------------------------------------------------- */

static void notify(const struct vsock_pci *d, uint16_t index)
{
    uint32_t offset = d->notify + (uint32_t)d->notify_off[index] * d->notify_multiplier;
    mmio_write16((uintptr_t)(d->bar + offset), index);
}

static uint32_t wait_used(struct virtq *q, uint32_t limit_ms, const char *what)
{
    lapic_timer_start();
    while (!virtq_has_used(q)) {
        if (lapic_timer_elapsed_ms() >= limit_ms) fail(what);
    }
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
    notify(d, VSOCK_RX);
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
    notify(d, VSOCK_TX);
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
