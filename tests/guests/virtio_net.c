/* virtio-net over virtio-pci, polled. Expects kvmlet's default PCI transport with one `--net` and
 * `--console serial`; virtio_net.sh runs it in a private network namespace, with virtio_net.py on
 * the TAP's host side:
 *   1. finds the network device (1af4:1041) on bus 0 and its virtio capabilities (common,
 *      notify, device configuration) in BAR 0;
 *   2. initialises it with VERSION_1, MAC, and STATUS and MTU when offered (no offloads, no
 *      MRG_RXBUF: every packet then carries the 12-byte header with num_buffers = 1), the
 *      receive queue (0) and the transmit queue (1) without interrupts (polled used rings);
 *   3. reads the MAC, link status and MTU from the device configuration (§5.1.4), consistently
 *      through config_generation;
 *   4. posts one receive buffer (header and frame in two descriptors), then transmits one frame
 *      (header and frame in two descriptors) to the broadcast address with EtherType 0x88b5 and
 *      a known payload, which the peer checks byte for byte;
 *   5. prints "ready for rx" and waits up to RX_TIMEOUT_MS for a frame of that EtherType sent
 *      to its MAC (others, which a host stack may send, are counted and the buffer reposted),
 *      checks its header and pattern and prints its text.
 * Prints one line per step, then "virtio-net: ok" or "virtio-net: FAIL <what>", and resets. No
 * interrupts: the IOAPIC pins stay masked and MSI-X stays off. */
#include "guest.h"
#include "virtio_pci_modern.h"

enum {
    VIRTIO_NET_TYPE = 1, /* virtio 1.2 §5.1.1: PCI device 1af4:1041 */

    /* §5.1.2 virtqueues, §5.1.4 device configuration layout. */
    NET_RECEIVE_QUEUE = 0,
    NET_TRANSMIT_QUEUE = 1,
    NET_CONFIG_MAC = 0,
    NET_CONFIG_STATUS = 6,
    NET_CONFIG_MTU = 10,
    NET_STATUS_LINK_UP = 1,

    /* IEEE 802.3: addresses, the header, the largest untagged frame; 802.1Q: one tag. */
    ETH_ALEN = 6,
    ETH_HEADER = 14,
    ETH_FRAME_MAX = 1514 + 4,
    ETH_TYPE_OFFSET = 12,
    /* IEEE 802 "Local Experimental EtherType 1": no host stack answers it or sends it. */
    ETH_TYPE_TEST = 0x88b5,

    /* The payloads both sides know (virtio_net.py builds the same bytes). */
    TX_PATTERN_BYTES = 200,
    RX_PATTERN_BYTES = 100,
    RX_TEXT_MAX = 64,

    TIMEOUT_MS = 2000,     /* for what the device does by itself */
    RX_TIMEOUT_MS = 20000, /* for the peer's frame, which waits for the serial line */
    RX_IGNORED_MAX = 64,   /* other frames tolerated before giving up */
};

/* §5.1.3 feature bits. */
#define VIRTIO_NET_F_MTU (1ull << 3)
#define VIRTIO_NET_F_MAC (1ull << 5)
#define VIRTIO_NET_F_STATUS (1ull << 16)

/* §5.1.6 struct virtio_net_hdr: with VERSION_1 always 12 bytes, num_buffers included. */
struct virtio_net_hdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
};
_Static_assert(sizeof(struct virtio_net_hdr) == 12, "§5.1.6");

static const char tx_text[] = "kvmlet tiny guest says hello over virtio-net";
static const char rx_text[] = "kvmlet host says hello to the tiny guest";
/* Byte i of the transmitted pattern, and of the one expected after rx_text and its NUL. */
static uint8_t tx_pattern(uint32_t i) { return (uint8_t)(7 * i + 3); }
static uint8_t rx_pattern(uint32_t i) { return (uint8_t)(11 * i + 5); }

/* The network function, and the MAC from its configuration. */
struct virtio_net_pci {
    struct virtio_pci_dev pci;
    uint8_t mac[ETH_ALEN];
};

static struct virtq rx_queue, tx_queue;
static struct virtio_net_hdr rx_header, tx_header;
static uint8_t rx_frame[ETH_FRAME_MAX];
static uint8_t tx_frame[ETH_HEADER + sizeof tx_text + TX_PATTERN_BYTES];

static void say(const char *text)
{
    serial_puts(text);
}

__attribute__((noreturn)) static void fail(const char *what)
{
    say("virtio-net: FAIL ");
    say(what);
    say("\r\n");
    guest_reset();
}

static void put_mac(const uint8_t *mac)
{
    for (int i = 0; i < ETH_ALEN; ++i) {
        if (i) say(":");
        serial_put_hex_digits(mac[i], 2);
    }
}

/* --- 1. The device on the bus ------------------------------------------------------------------ */

static void find_device(struct virtio_net_pci *d)
{
    uint8_t slot = virtio_pci_find(VIRTIO_NET_TYPE);
    if (slot == 0) fail("no virtio-net 1af4:1041 on bus 0");
    const char *error = virtio_pci_probe(&d->pci, slot, 0, 0);
    if (error) fail(error);
    say("virtio-net: at 00:");
    serial_put_hex_digits(d->pci.slot, 2);
    say(".0, BAR 0 at 0x");
    serial_put_hex_digits(d->pci.bar, 8);
    say("\r\n");
}

/* --- 2. Initialisation ----------------------------------------------------------------------- */

/* §3.1.1 Driver Requirements: Device Initialization, with VERSION_1 and MAC required, STATUS and
 * MTU taken when offered, nothing else; no MSI-X vector (the driver polls). */
static void init_device(struct virtio_net_pci *d)
{
    struct virtq *const queues[] = {[NET_RECEIVE_QUEUE] = &rx_queue, [NET_TRANSMIT_QUEUE] = &tx_queue};
    uint64_t wanted = VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MTU;
    const char *error = virtio_pci_init(&d->pci, VIRTIO_NET_F_MAC, wanted, queues, 2, VIRTIO_PCI_NO_VECTOR);
    if (error) fail(error);
    say("features: device offers 0x");
    serial_put_hex_digits(d->pci.offered, 16);
    say("\r\n");
    say("queues: receive size ");
    serial_put_dec(rx_queue.size);
    say(", transmit size ");
    serial_put_dec(tx_queue.size);
    say(", DRIVER_OK\r\n");
}

/* --- 3. The device configuration --------------------------------------------------------------- */

/* §4.1.4.3.1: fields read between two equal config_generation values belong together. */
static void read_config(struct virtio_net_pci *d, uint16_t *status, uint16_t *mtu)
{
    const struct virtio_pci_dev *pci = &d->pci;
    for (int attempt = 0; attempt < 10; ++attempt) {
        uint8_t generation = virtio_pci_config_generation(pci);
        for (uint32_t i = 0; i < ETH_ALEN; ++i) {
            d->mac[i] = mmio_read8(virtio_pci_config(pci, NET_CONFIG_MAC + i));
        }
        *status = mmio_read16(virtio_pci_config(pci, NET_CONFIG_STATUS));
        *mtu = mmio_read16(virtio_pci_config(pci, NET_CONFIG_MTU));
        if (virtio_pci_config_generation(pci) == generation) return;
    }
    fail("config_generation keeps changing");
}

static void show_config(struct virtio_net_pci *d)
{
    uint16_t status, mtu;
    read_config(d, &status, &mtu);
    if (d->mac[0] & 1) fail("the MAC is a multicast address");
    say("config: mac ");
    put_mac(d->mac);
    if (d->pci.features & VIRTIO_NET_F_STATUS) {
        say((status & NET_STATUS_LINK_UP) ? ", link up" : ", link down");
    }
    if (d->pci.features & VIRTIO_NET_F_MTU) {
        say(", mtu ");
        serial_put_dec(mtu);
    }
    say("\r\n");
}

/* --- 4. and 5. Frames -------------------------------------------------------------------------- */

static void zero(volatile void *start, uint32_t len)
{
    volatile uint8_t *p = start;
    for (uint32_t i = 0; i < len; ++i) p[i] = 0;
}

/* One receive chain: the header and the frame in separate device-writable buffers. */
static void post_rx_buffer(const struct virtio_net_pci *d)
{
    zero(&rx_header, sizeof rx_header);
    struct virtq_buf bufs[2] = {{&rx_header, sizeof rx_header, 1}, {rx_frame, sizeof rx_frame, 1}};
    const char *error = virtq_add_chain(&rx_queue, bufs, 2);
    if (error) fail(error);
    virtq_make_available(&rx_queue, 0);
    virtio_pci_notify(&d->pci, NET_RECEIVE_QUEUE);
}

/* Waits up to `limit_ms` for the chain at descriptor 0 of `q`; returns its used length. */
static uint32_t wait_used(struct virtq *q, uint32_t limit_ms, const char *what)
{
    if (!virtq_poll_used(q, limit_ms)) fail(what);
    uint32_t len;
    const char *error = virtq_pop_used(q, 0, &len);
    if (error) fail(error);
    return len;
}

static void build_tx_frame(const struct virtio_net_pci *d)
{
    uint32_t at = 0;
    for (int i = 0; i < ETH_ALEN; ++i) tx_frame[at++] = 0xff; /* broadcast */
    for (int i = 0; i < ETH_ALEN; ++i) tx_frame[at++] = d->mac[i];
    tx_frame[at++] = ETH_TYPE_TEST >> 8;
    tx_frame[at++] = ETH_TYPE_TEST & 0xff;
    for (uint32_t i = 0; i < sizeof tx_text; ++i) tx_frame[at++] = (uint8_t)tx_text[i]; /* with its NUL */
    for (uint32_t i = 0; i < TX_PATTERN_BYTES; ++i) tx_frame[at++] = tx_pattern(i);
}

/* §5.1.6.2: no offload asked for, so the header is all zeros (num_buffers included). */
static void transmit(const struct virtio_net_pci *d)
{
    build_tx_frame(d);
    zero(&tx_header, sizeof tx_header);
    struct virtq_buf bufs[2] = {{&tx_header, sizeof tx_header, 0}, {tx_frame, sizeof tx_frame, 0}};
    const char *error = virtq_add_chain(&tx_queue, bufs, 2);
    if (error) fail(error);
    virtq_make_available(&tx_queue, 0);
    virtio_pci_notify(&d->pci, NET_TRANSMIT_QUEUE);
    uint32_t len = wait_used(&tx_queue, TIMEOUT_MS, "the transmit chain did not come back");
    say("tx: ");
    serial_put_dec(sizeof tx_frame);
    say("-byte frame to ff:ff:ff:ff:ff:ff type 0x88b5 sent, used len ");
    serial_put_dec(len);
    say("\r\n");
}

static int is_test_frame(const struct virtio_net_pci *d, uint32_t frame_len)
{
    if (frame_len < ETH_HEADER) return 0;
    if (((uint32_t)rx_frame[ETH_TYPE_OFFSET] << 8 | rx_frame[ETH_TYPE_OFFSET + 1]) != ETH_TYPE_TEST) return 0;
    for (int i = 0; i < ETH_ALEN; ++i) {
        if (rx_frame[i] != d->mac[i]) return 0;
    }
    return 1;
}

/* Checks the received test frame's header and payload: rx_text, its NUL, then the pattern; prints
 * the text as received. */
static void check_rx_frame(uint32_t frame_len)
{
    volatile struct virtio_net_hdr *h = &rx_header;
    if (h->num_buffers != 1) fail("num_buffers is not 1 without MRG_RXBUF (§5.1.6.4)");
    if (h->flags != 0 || h->gso_type != 0) fail("the header has flags or a GSO type no feature allows");
    uint32_t text_end = ETH_HEADER;
    while (text_end < frame_len && text_end - ETH_HEADER < RX_TEXT_MAX && rx_frame[text_end] != 0) ++text_end;
    if (text_end >= frame_len || rx_frame[text_end] != 0) fail("the payload's text is not NUL-terminated");
    for (uint32_t i = 0; i < sizeof rx_text; ++i) {
        if (ETH_HEADER + i > text_end || rx_frame[ETH_HEADER + i] != (uint8_t)rx_text[i]) {
            fail("the payload's text is not the peer's");
        }
    }
    uint32_t pattern_start = text_end + 1;
    if (frame_len - pattern_start < RX_PATTERN_BYTES) fail("the payload is shorter than its pattern");
    for (uint32_t i = 0; i < RX_PATTERN_BYTES; ++i) {
        if (rx_frame[pattern_start + i] != rx_pattern(i)) fail("the payload's pattern is corrupt");
    }
    say("rx: payload '");
    for (uint32_t i = ETH_HEADER; i < text_end; ++i) {
        char c = (char)rx_frame[i];
        serial_putc(c >= ' ' && c <= '~' ? c : '?');
    }
    say("', pattern of ");
    serial_put_dec(RX_PATTERN_BYTES);
    say(" bytes intact\r\n");
}

/* Other frames (which a host stack may send on a new interface) go back into the ring. */
static void receive(const struct virtio_net_pci *d)
{
    say("ready for rx\r\n");
    for (uint32_t ignored = 0; ignored <= RX_IGNORED_MAX; ++ignored) {
        uint32_t len = wait_used(&rx_queue, RX_TIMEOUT_MS, "no frame received within the timeout");
        if (len < sizeof rx_header || len > sizeof rx_header + sizeof rx_frame) {
            fail("a used length is out of range");
        }
        uint32_t frame_len = len - (uint32_t)sizeof rx_header;
        if (is_test_frame(d, frame_len)) {
            say("rx: ");
            serial_put_dec(frame_len);
            say("-byte frame from ");
            put_mac(rx_frame + ETH_ALEN);
            say(", num_buffers ");
            serial_put_dec(((volatile struct virtio_net_hdr *)&rx_header)->num_buffers);
            say(", other frames ignored: ");
            serial_put_dec(ignored);
            say("\r\n");
            check_rx_frame(frame_len);
            return;
        }
        post_rx_buffer(d);
    }
    fail("too many other frames before the test frame");
}

void guest_main(void)
{
    struct virtio_net_pci dev = {0};
    find_device(&dev);
    init_device(&dev);
    show_config(&dev);
    post_rx_buffer(&dev);
    transmit(&dev);
    receive(&dev);
    say("virtio-net: ok\r\n");
    guest_reset();
}
