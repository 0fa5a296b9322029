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
#include "lapic.h"
#include "pci.h"
#include "virtio_core.h"

enum {
    VIRTIO_NET_ID = 0x10411af4, /* device << 16 | vendor; virtio 1.2 §4.1.2.1: 0x1040 + type 1 */
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
    COMMON_CONFIG_GENERATION = 0x15,
    COMMON_QUEUE_SELECT = 0x16,
    COMMON_QUEUE_SIZE = 0x18,
    COMMON_QUEUE_ENABLE = 0x1c,
    COMMON_QUEUE_NOTIFY_OFF = 0x1e,
    COMMON_QUEUE_DESC = 0x20,
    COMMON_QUEUE_DRIVER = 0x28,
    COMMON_QUEUE_DEVICE = 0x30,

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

/* The network function as its capabilities describe it. */
struct virtio_net_pci {
    uint8_t slot;
    unsigned found; /* 1 << cfg_type of each capability seen */
    uint64_t bar;
    uint32_t common, notify, device, notify_multiplier; /* offsets into BAR 0 */
    uint16_t notify_off[2];                            /* per queue */
    uint64_t features;                                 /* accepted */
    uint8_t mac[ETH_ALEN];
};

static struct virtq rx_queue, tx_queue;
static struct virtio_net_hdr rx_header, tx_header;
static uint8_t rx_frame[ETH_FRAME_MAX];
static uint8_t tx_frame[ETH_HEADER + sizeof tx_text + TX_PATTERN_BYTES];

static inline uint8_t mmio_read8(uintptr_t address) { return *(volatile uint8_t *)address; }
static inline uint16_t mmio_read16(uintptr_t address) { return *(volatile uint16_t *)address; }
static inline uint32_t mmio_read32(uintptr_t address) { return *(volatile uint32_t *)address; }
static inline void mmio_write8(uintptr_t address, uint8_t value) { *(volatile uint8_t *)address = value; }
static inline void mmio_write16(uintptr_t address, uint16_t value) { *(volatile uint16_t *)address = value; }
static inline void mmio_write32(uintptr_t address, uint32_t value) { *(volatile uint32_t *)address = value; }

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

static uint8_t find_net_slot(void)
{
    for (uint8_t slot = 1; slot < PCI_SLOTS; ++slot) {
        if (pci_read32(slot, PCI_VENDOR_ID) == VIRTIO_NET_ID) return slot;
    }
    fail("no virtio-net 1af4:1041 on bus 0");
}

static void record_capability(struct virtio_net_pci *d, uint8_t cap)
{
    uint8_t type = pci_read8(d->slot, (uint8_t)(cap + VIRTIO_CAP_CFG_TYPE));
    if (type != VIRTIO_PCI_CAP_COMMON && type != VIRTIO_PCI_CAP_NOTIFY && type != VIRTIO_PCI_CAP_DEVICE) {
        return;
    }
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

static void find_device(struct virtio_net_pci *d)
{
    d->slot = find_net_slot();
    int count = 0;
    for (uint8_t cap = pci_first_capability(d->slot); cap != 0; cap = pci_next_capability(d->slot, cap)) {
        if (++count > PCI_CAP_MAX) fail("the capability list loops");
        if (cap < PCI_HEADER_SIZE) fail("a capability points into the header");
        if (pci_read8(d->slot, cap) == PCI_CAP_VENDOR) record_capability(d, cap);
    }
    if (d->found != FOUND_ALL) fail("the common, notify or device configuration capability is missing");
    d->bar = pci_bar_address(d->slot, 0);
    if (d->bar == 0) fail("BAR 0 is not placed");
    say("virtio-net: at 00:");
    serial_put_hex_digits(d->slot, 2);
    say(".0, BAR 0 at 0x");
    serial_put_hex_digits(d->bar, 8);
    say("\r\n");
}

/* --- 2. Initialisation ----------------------------------------------------------------------- */

static uintptr_t common(const struct virtio_net_pci *d, uint32_t field)
{
    return (uintptr_t)(d->bar + d->common + field);
}

static uintptr_t device_config(const struct virtio_net_pci *d, uint32_t field)
{
    return (uintptr_t)(d->bar + d->device + field);
}

static void write_common64(const struct virtio_net_pci *d, uint32_t field, const volatile void *address)
{
    uint64_t value = (uintptr_t)address;
    mmio_write32(common(d, field), (uint32_t)value); /* §4.1.3.1: two 32-bit halves are fine */
    mmio_write32(common(d, field + 4), (uint32_t)(value >> 32));
}

static int timed_out(uint32_t limit_ms)
{
    return lapic_timer_elapsed_ms() >= limit_ms;
}

/* §2.4.2: write 0, then wait for the status to read back 0. */
static void reset_device(const struct virtio_net_pci *d)
{
    mmio_write8(common(d, COMMON_DEVICE_STATUS), 0);
    lapic_timer_start();
    while (mmio_read8(common(d, COMMON_DEVICE_STATUS)) != 0) {
        if (timed_out(TIMEOUT_MS)) fail("the device status did not return to 0 after a reset");
    }
}

static void set_status(const struct virtio_net_pci *d, uint8_t bits)
{
    uint8_t status = mmio_read8(common(d, COMMON_DEVICE_STATUS));
    mmio_write8(common(d, COMMON_DEVICE_STATUS), (uint8_t)(status | bits));
}

static uint64_t device_features(const struct virtio_net_pci *d)
{
    uint64_t features = 0;
    for (uint32_t word = 0; word < 2; ++word) {
        mmio_write32(common(d, COMMON_DEVICE_FEATURE_SELECT), word);
        features |= (uint64_t)mmio_read32(common(d, COMMON_DEVICE_FEATURE)) << (32 * word);
    }
    return features;
}

/* VERSION_1 and MAC are required; STATUS and MTU taken when offered; nothing else. */
static void negotiate_features(struct virtio_net_pci *d)
{
    uint64_t offered = device_features(d);
    say("features: device offers 0x");
    serial_put_hex_digits(offered, 16);
    say("\r\n");
    if (!(offered & VIRTIO_F_VERSION_1)) fail("the device does not offer VERSION_1");
    if (!(offered & VIRTIO_NET_F_MAC)) fail("the device does not offer MAC");
    d->features = offered & (VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MTU);
    for (uint32_t word = 0; word < 2; ++word) {
        mmio_write32(common(d, COMMON_DRIVER_FEATURE_SELECT), word);
        mmio_write32(common(d, COMMON_DRIVER_FEATURE), (uint32_t)(d->features >> (32 * word)));
    }
    set_status(d, VIRTIO_STATUS_FEATURES_OK);
    if (!(mmio_read8(common(d, COMMON_DEVICE_STATUS)) & VIRTIO_STATUS_FEATURES_OK)) {
        fail("the device did not accept the features (FEATURES_OK)");
    }
}

/* §4.1.5.1.3 Virtqueue Configuration; no MSI-X vector (the driver polls). */
static void setup_queue(struct virtio_net_pci *d, uint16_t index, struct virtq *q)
{
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

/* §3.1.1 Driver Requirements: Device Initialization. */
static void init_device(struct virtio_net_pci *d)
{
    uint16_t command = pci_read16(d->slot, PCI_COMMAND);
    pci_write16(d->slot, PCI_COMMAND, command | PCI_COMMAND_MEMORY | PCI_COMMAND_BUS_MASTER);
    reset_device(d);
    set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
    set_status(d, VIRTIO_STATUS_DRIVER);
    negotiate_features(d);
    setup_queue(d, NET_RECEIVE_QUEUE, &rx_queue);
    setup_queue(d, NET_TRANSMIT_QUEUE, &tx_queue);
    set_status(d, VIRTIO_STATUS_DRIVER_OK);
    if (mmio_read8(common(d, COMMON_DEVICE_STATUS)) & VIRTIO_STATUS_DEVICE_NEEDS_RESET) {
        fail("the device needs a reset");
    }
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
    for (int attempt = 0; attempt < 10; ++attempt) {
        uint8_t generation = mmio_read8(common(d, COMMON_CONFIG_GENERATION));
        for (uint32_t i = 0; i < ETH_ALEN; ++i) d->mac[i] = mmio_read8(device_config(d, NET_CONFIG_MAC + i));
        *status = mmio_read16(device_config(d, NET_CONFIG_STATUS));
        *mtu = mmio_read16(device_config(d, NET_CONFIG_MTU));
        if (mmio_read8(common(d, COMMON_CONFIG_GENERATION)) == generation) return;
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
    if (d->features & VIRTIO_NET_F_STATUS) {
        say((status & NET_STATUS_LINK_UP) ? ", link up" : ", link down");
    }
    if (d->features & VIRTIO_NET_F_MTU) {
        say(", mtu ");
        serial_put_dec(mtu);
    }
    say("\r\n");
}

/* --- 4. and 5. Frames -------------------------------------------------------------------------- */

/* §4.1.5.2: a 16-bit write of the queue index at the queue's notification address. */
static void notify(const struct virtio_net_pci *d, uint16_t index)
{
    uint32_t offset = d->notify + (uint32_t)d->notify_off[index] * d->notify_multiplier;
    mmio_write16((uintptr_t)(d->bar + offset), index);
}

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
    notify(d, NET_RECEIVE_QUEUE);
}

/* Waits up to `limit_ms` for the chain at descriptor 0 of `q`; returns its used length. */
static uint32_t wait_used(struct virtq *q, uint32_t limit_ms, const char *what)
{
    lapic_timer_start();
    while (!virtq_has_used(q)) {
        if (timed_out(limit_ms)) fail(what);
    }
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
    notify(d, NET_TRANSMIT_QUEUE);
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
