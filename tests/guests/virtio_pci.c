/* PCI, virtio-pci, MSI-X and INTx, end to end. Expects kvmlet's default PCI transport with
 * `--rng` and no other virtio device:
 *   1. enumerates bus 0 through 0xCF8/0xCFC (host bridge 1b36:0008 at slot 0, virtio-rng
 *      1af4:1044) and checks that ECAM reads the same headers;
 *   2. walks the capability list (virtio common, notify, ISR, device, PCI-cfg; MSI-X), sizes
 *      BAR 0 and reads num_queues through the PCI-cfg window;
 *   3. initialises virtio-rng through the common configuration with queue 0 on MSI-X vector 0,
 *      enables MSI-X and gets an interrupt for a 16-byte request;
 *   4. with the vector masked, a completed request sets its PBA bit and interrupts only once
 *      unmasked;
 *   5. moves BAR 0: the old address reads all-ones and ignores notifications, the new one works;
 *   6. with MSI-X off, requests interrupt through INTx (IOAPIC pin 16 + slot % 8, level, active
 *      low): the line is asserted again after each EOI until the ISR status is read.
 * Prints one line per step, then "virtio-pci: ok" or "virtio-pci: FAIL <what>", and resets. */
#include "guest.h"
#include "idt.h"
#include "lapic.h"
#include "pci.h"
#include "virtio_pci_modern.h"

enum {
    HOST_BRIDGE_ID = 0x00081b36, /* device << 16 | vendor: Red Hat's PCIe host bridge */
    VIRTIO_RNG_ID = 0x10441af4,  /* virtio 1.2 §4.1.2.1: 0x1040 + device type 4 */
    MSIX_VECTOR_QUEUE = 0,       /* queue 0's entry in the MSI-X table */
    PCI_INTERRUPT_PIN = 0x3d,
    PCI_INTERRUPT_PIN_INTA = 1,

    /* Besides the common, notify and device structures virtio_pci_probe requires. */
    OTHER_STRUCTURES = 1 << VIRTIO_PCI_CAP_ISR | 1 << VIRTIO_PCI_CAP_PCI_CFG,
    STATUS_ALL_SET = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                     VIRTIO_STATUS_DRIVER_OK,

    /* PCI 3.0 §6.8.2 MSI-X capability and table. */
    MSIX_CONTROL = 2,
    MSIX_TABLE = 4,
    MSIX_PBA = 8,
    MSIX_CONTROL_ENABLE = 1 << 15,
    MSIX_CONTROL_FUNCTION_MASK = 1 << 14,
    MSIX_CONTROL_TABLE_SIZE = 0x7ff,
    MSIX_BIR = 7,
    MSIX_ENTRY_ADDRESS_LOW = 0,
    MSIX_ENTRY_ADDRESS_HIGH = 4,
    MSIX_ENTRY_DATA = 8,
    MSIX_ENTRY_CONTROL = 12,
    MSIX_ENTRY_MASKED = 1,
    MSI_ADDRESS_APIC_ID_0 = 0xfee00000, /* SDM vol. 3A, 11.11.1: physical destination 0 */

    /* The IOAPIC (82093AA datasheet §3.2) and kvmlet's INTx pins (layout.hpp pci_intx_*). */
    IOAPIC_REGISTER_SELECT = 0x00,
    IOAPIC_WINDOW = 0x10,
    IOAPIC_REDIRECTION_TABLE = 0x10, /* pin n: 0x10 + 2n (low dword), 0x11 + 2n (high) */
    IOAPIC_ACTIVE_LOW = 1 << 13,
    IOAPIC_LEVEL_TRIGGERED = 1 << 15,
    PCI_INTX_FIRST_PIN = 16,
    PCI_INTX_PINS = 8,

    LAPIC_SVR_ENABLE = 1 << 8,
    LAPIC_LVT_MASKED = 1 << 16,
    VECTOR_MSIX = 0x40,
    VECTOR_INTX = 0x50,
    VECTOR_SPURIOUS = 0xff,

    RNG_BYTES = 16,
    TIMEOUT_MS = 2000, /* for anything that should happen */
    QUIET_MS = 50,     /* for anything that should not */
};

#define IOAPIC_BASE 0xfec00000ul
/* Where BAR 0 moves to: inside kvmlet's 32-bit BAR window [0xe8000000, 0xfec00000) (layout.hpp
 * pci_mmio32_*), above where kvmlet places the BARs of a few devices. */
#define BAR_MOVED_TO 0xf0000000ul

/* The virtio-pci function as the capabilities describe it, with its MSI-X capability. */
struct virtio_pci {
    struct virtio_pci_dev pci;
    uint8_t msix_cap;              /* 0 until found */
    uint64_t bar_size;             /* BAR 0, where all the regions are */
    uint32_t msix_table, msix_pba; /* offsets into BAR 0 */
};

static struct virtq queue;
static uint8_t random_bytes[RNG_BYTES];
static volatile uint32_t msix_interrupts, intx_interrupts;

/* Interrupt handlers: count and EOI (SDM 11.8.5); the INTx handler leaves the ISR status to the
 * main code, so the line stays asserted until then. */
void msix_handler(void)
{
    msix_interrupts++;
    lapic_write(LAPIC_EOI, 0);
}

void intx_handler(void)
{
    intx_interrupts++;
    lapic_write(LAPIC_EOI, 0);
}

void spurious_handler(void) {} /* SDM 11.9: no EOI for the spurious vector */

IDT_ENTRY(msix_entry, msix_handler);
IDT_ENTRY(intx_entry, intx_handler);
IDT_ENTRY(spurious_entry, spurious_handler);

static void say(const char *text)
{
    serial_puts(text);
}

static void put_hex(uint64_t value, int digits)
{
    serial_puts("0x");
    serial_put_hex_digits(value, digits);
}

__attribute__((noreturn)) static void fail(const char *what)
{
    say("virtio-pci: FAIL ");
    say(what);
    say("\r\n");
    guest_reset();
}

static int timed_out(void)
{
    return lapic_timer_elapsed_ms() >= TIMEOUT_MS;
}

static void sleep_ms(uint32_t ms)
{
    lapic_timer_start();
    while (lapic_timer_elapsed_ms() < ms) {
    }
}

/* Waits (interrupts on) until *counter moves past `seen`. */
static int interrupted(volatile uint32_t *counter, uint32_t seen)
{
    lapic_timer_start();
    while (*counter == seen) {
        if (timed_out()) return 0;
    }
    return 1;
}

/* --- 1. Enumeration --------------------------------------------------------------------------- */

static void print_function(uint8_t slot, uint32_t id, uint32_t class_revision)
{
    say("pci 00:");
    serial_put_hex_digits(slot, 2);
    say(".0 ");
    serial_put_hex_digits(id & 0xffff, 4);
    say(":");
    serial_put_hex_digits(id >> 16, 4);
    say(" class ");
    serial_put_hex_digits(class_revision >> 8, 6);
    say("\r\n");
}

/* The header of `slot` reads the same through ECAM as through the ports (only the ID dword of
 * an absent function). */
static void compare_with_ecam(uint8_t slot, int present)
{
    uint8_t end = present ? PCI_HEADER_SIZE : 4;
    for (uint8_t offset = 0; offset < end; offset += 4) {
        if (pci_ecam_read32(slot, offset) != pci_read32(slot, offset)) {
            fail("ECAM and 0xCF8/0xCFC read different configuration headers");
        }
    }
}

/* Returns virtio-rng's slot. */
static uint8_t enumerate_bus(void)
{
    uint8_t rng_slot = 0;
    for (uint8_t slot = 0; slot < PCI_SLOTS; ++slot) {
        uint32_t id = pci_read32(slot, PCI_VENDOR_ID);
        int present = id != PCI_ABSENT;
        compare_with_ecam(slot, present);
        if (!present) continue;
        print_function(slot, id, pci_read32(slot, PCI_CLASS_REVISION));
        if (slot == 0 && id != HOST_BRIDGE_ID) fail("00:00.0 is not the host bridge 1b36:0008");
        if (id == VIRTIO_RNG_ID) rng_slot = slot;
    }
    if (pci_read32(0, PCI_VENDOR_ID) == PCI_ABSENT) fail("no host bridge at 00:00.0");
    if (rng_slot == 0) fail("no virtio-rng 1af4:1044 on bus 0");
    say("ecam: headers agree with 0xcf8/0xcfc\r\n");
    return rng_slot;
}

/* --- 2. Capabilities and BAR 0 ---------------------------------------------------------------- */

static const char *const cfg_type_names[] = {"?", "common", "notify", "isr", "device", "pci-cfg"};

/* virtio_pci_probe recorded it (and checked it lies in BAR 0); this prints it. */
static void print_virtio_capability(const struct virtio_pci *d, uint8_t cap)
{
    uint8_t slot = d->pci.slot;
    uint8_t type = pci_read8(slot, (uint8_t)(cap + VIRTIO_CAP_CFG_TYPE));
    if (type < VIRTIO_PCI_CAP_COMMON || type > VIRTIO_PCI_CAP_PCI_CFG) return; /* §4.1.4: ignore */
    say("cap ");
    put_hex(cap, 2);
    say(": virtio ");
    say(cfg_type_names[type]);
    if (type != VIRTIO_PCI_CAP_PCI_CFG) {
        say(" offset ");
        put_hex(pci_read32(slot, (uint8_t)(cap + VIRTIO_CAP_OFFSET)), 4);
        say(" length ");
        put_hex(pci_read32(slot, (uint8_t)(cap + VIRTIO_CAP_LENGTH)), 4);
    }
    say("\r\n");
}

static void record_msix_capability(struct virtio_pci *d, uint8_t cap)
{
    uint16_t control = pci_read16(d->pci.slot, (uint8_t)(cap + MSIX_CONTROL));
    uint32_t table = pci_read32(d->pci.slot, (uint8_t)(cap + MSIX_TABLE));
    uint32_t pba = pci_read32(d->pci.slot, (uint8_t)(cap + MSIX_PBA));
    if ((table & MSIX_BIR) != 0 || (pba & MSIX_BIR) != 0) fail("the MSI-X table or PBA is outside BAR 0");
    d->msix_cap = cap;
    d->msix_table = table & ~(uint32_t)MSIX_BIR;
    d->msix_pba = pba & ~(uint32_t)MSIX_BIR;
    say("cap ");
    put_hex(cap, 2);
    say(": msix vectors ");
    serial_put_dec((control & MSIX_CONTROL_TABLE_SIZE) + 1u);
    say(" table ");
    put_hex(d->msix_table, 4);
    say(" pba ");
    put_hex(d->msix_pba, 4);
    say("\r\n");
}

static void visit_capability(void *context, uint8_t cap, uint8_t id)
{
    struct virtio_pci *d = context;
    if (id == PCI_CAP_VENDOR) print_virtio_capability(d, cap);
    if (id == PCI_CAP_MSIX) record_msix_capability(d, cap);
}

static void find_capabilities(struct virtio_pci *d, uint8_t slot)
{
    const char *error = virtio_pci_probe(&d->pci, slot, visit_capability, d);
    if (error) fail(error);
    if ((d->pci.found & OTHER_STRUCTURES) != OTHER_STRUCTURES || d->msix_cap == 0) {
        fail("a virtio or MSI-X capability is missing");
    }
}

static void size_bar0(struct virtio_pci *d)
{
    uint64_t bar = pci_bar_address(d->pci.slot, 0), size = pci_bar_size(d->pci.slot, 0);
    d->pci.bar = bar;
    d->bar_size = size;
    if (pci_bar_address(d->pci.slot, 0) != bar) fail("BAR 0 lost its address while being sized");
    if (size == 0 || (size & (size - 1)) != 0) fail("BAR 0's size is not a power of two");
    if (bar == 0 || (bar & (size - 1)) != 0) fail("BAR 0 is not placed at a multiple of its size");
    if (d->msix_pba >= d->bar_size || d->pci.notify >= d->bar_size) fail("a region lies beyond BAR 0's size");
    say("bar0: at ");
    put_hex(d->pci.bar, 8);
    say(" size ");
    put_hex(d->bar_size, 4);
    say("\r\n");
}

/* §4.1.4.9: the PCI configuration access capability reaches BAR 0 through configuration space. */
static void read_through_pci_cfg_window(const struct virtio_pci *d)
{
    uint8_t slot = d->pci.slot, cap = d->pci.pci_cfg_cap;
    pci_write32(slot, (uint8_t)(cap + VIRTIO_CAP_BAR), 0); /* bar 0; id and padding are read-only */
    pci_write32(slot, (uint8_t)(cap + VIRTIO_CAP_OFFSET), d->pci.common + VIRTIO_COMMON_NUM_QUEUES);
    pci_write32(slot, (uint8_t)(cap + VIRTIO_CAP_LENGTH), 2);
    uint16_t through_window = pci_read16(slot, (uint8_t)(cap + VIRTIO_CAP_PCI_CFG_DATA));
    if (through_window != mmio_read16(virtio_pci_common(&d->pci, VIRTIO_COMMON_NUM_QUEUES))) {
        fail("the PCI-cfg window and BAR 0 disagree on num_queues");
    }
    say("pci-cfg window: num_queues ");
    serial_put_dec(through_window);
    say("\r\n");
}

/* --- 3. virtio-rng over virtio-pci, MSI-X ----------------------------------------------------- */

/* §3.1.1 Driver Requirements: Device Initialization, VERSION_1 only, queue 0 on MSI-X vector 0. */
static void init_rng(struct virtio_pci *d)
{
    struct virtq *const queues[] = {&queue};
    const char *error = virtio_pci_init(&d->pci, 0, 0, queues, 1, MSIX_VECTOR_QUEUE);
    if (error) fail(error);
    say("virtio-rng: DRIVER_OK, queue 0 size ");
    serial_put_dec(queue.size);
    say(" on MSI-X vector 0\r\n");
}

/* The IDT, the local APIC (software-enabled through the spurious vector register, LINT0/1 masked
 * so nothing from the PIC arrives), then sti. */
static void enable_interrupts(void)
{
    idt_set_gate(VECTOR_MSIX, msix_entry);
    idt_set_gate(VECTOR_INTX, intx_entry);
    idt_set_gate(VECTOR_SPURIOUS, spurious_entry);
    idt_load();
    lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | VECTOR_SPURIOUS);
    lapic_write(LAPIC_LVT_LINT0, LAPIC_LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT1, LAPIC_LVT_MASKED);
    __asm__ volatile("sti" ::: "memory");
}

static uintptr_t msix_entry0(const struct virtio_pci *d, uint32_t field)
{
    return (uintptr_t)(d->pci.bar + d->msix_table + field);
}

static void set_msix_control(const struct virtio_pci *d, uint16_t set, uint16_t clear)
{
    uint8_t reg = (uint8_t)(d->msix_cap + MSIX_CONTROL);
    pci_write16(d->pci.slot, reg, (uint16_t)((pci_read16(d->pci.slot, reg) | set) & ~clear));
}

/* Enables MSI-X, then points table entry 0 at APIC ID 0 with VECTOR_MSIX and unmasks it. */
static void enable_msix(const struct virtio_pci *d)
{
    set_msix_control(d, MSIX_CONTROL_ENABLE, MSIX_CONTROL_FUNCTION_MASK);
    if (mmio_read32(msix_entry0(d, MSIX_ENTRY_CONTROL)) != MSIX_ENTRY_MASKED) {
        fail("MSI-X entry 0 is not masked after reset");
    }
    mmio_write32(msix_entry0(d, MSIX_ENTRY_ADDRESS_LOW), MSI_ADDRESS_APIC_ID_0);
    mmio_write32(msix_entry0(d, MSIX_ENTRY_ADDRESS_HIGH), 0);
    mmio_write32(msix_entry0(d, MSIX_ENTRY_DATA), VECTOR_MSIX); /* fixed delivery, edge */
    mmio_write32(msix_entry0(d, MSIX_ENTRY_CONTROL), 0);
}

static void post_rng_buffer(void)
{
    for (int i = 0; i < RNG_BYTES; ++i) ((volatile uint8_t *)random_bytes)[i] = 0;
    struct virtq_buf buf = {random_bytes, RNG_BYTES, 1};
    const char *error = virtq_add_chain(&queue, &buf, 1);
    if (error) fail(error);
    virtq_make_available(&queue, 0);
}

/* §4.1.5.2: a 16-bit write of the queue index at the queue's notification address. */
static void notify_at(uint64_t bar, const struct virtio_pci *d)
{
    mmio_write16((uintptr_t)(bar + virtio_pci_notify_offset(&d->pci, 0)), 0);
}

/* Waits for the request to come back; checks it wrote 16 bytes, not all zeros. */
static uint32_t take_rng_result(void)
{
    if (!virtq_poll_used(&queue, TIMEOUT_MS)) fail("timed out waiting for the device to return the buffer");
    uint32_t len;
    const char *error = virtq_pop_used(&queue, 0, &len);
    if (error) fail(error);
    if (len != RNG_BYTES) fail("the device did not fill the whole buffer");
    uint8_t any = 0;
    for (int i = 0; i < RNG_BYTES; ++i) any |= ((volatile uint8_t *)random_bytes)[i];
    if (!any) fail("the buffer holds only zeros");
    return len;
}

static void msix_request(const struct virtio_pci *d)
{
    uint32_t seen = msix_interrupts;
    post_rng_buffer();
    notify_at(d->pci.bar, d);
    if (!interrupted(&msix_interrupts, seen)) fail("no MSI-X interrupt for the used buffer");
    if (!virtq_has_used(&queue)) fail("the MSI-X interrupt came before the used ring entry");
    uint32_t len = take_rng_result();
    say("msix: interrupt on vector ");
    serial_put_dec(VECTOR_MSIX);
    say(", used len ");
    serial_put_dec(len);
    say("\r\n");
}

/* --- 4. A masked vector ----------------------------------------------------------------------- */

static int pba_bit0(const struct virtio_pci *d)
{
    return mmio_read32((uintptr_t)(d->pci.bar + d->msix_pba)) & 1;
}

static void wait_for_pba_bit0(const struct virtio_pci *d)
{
    lapic_timer_start();
    while (!pba_bit0(d)) {
        if (timed_out()) fail("the PBA does not show the masked vector pending");
    }
}

static void msix_masked_request(const struct virtio_pci *d)
{
    mmio_write32(msix_entry0(d, MSIX_ENTRY_CONTROL), MSIX_ENTRY_MASKED);
    uint32_t seen = msix_interrupts;
    post_rng_buffer();
    notify_at(d->pci.bar, d);
    take_rng_result();
    wait_for_pba_bit0(d);
    sleep_ms(QUIET_MS);
    if (msix_interrupts != seen) fail("an interrupt arrived while the vector was masked");
    mmio_write32(msix_entry0(d, MSIX_ENTRY_CONTROL), 0);
    if (!interrupted(&msix_interrupts, seen)) fail("no interrupt when the pending vector was unmasked");
    if (pba_bit0(d)) fail("the PBA bit stayed set after delivery");
    say("msix: masked vector pending in the PBA, delivered on unmask\r\n");
}

/* --- 5. Moving BAR 0 -------------------------------------------------------------------------- */

/* Memory decoding off, the new address, decoding on again. */
static void move_bar0(struct virtio_pci *d, uint64_t to)
{
    uint16_t command = pci_read16(d->pci.slot, PCI_COMMAND);
    pci_write16(d->pci.slot, PCI_COMMAND, command & (uint16_t)~PCI_COMMAND_MEMORY);
    if (mmio_read32(virtio_pci_common(&d->pci, VIRTIO_COMMON_DEVICE_FEATURE_SELECT)) != PCI_ABSENT) {
        fail("BAR 0 still answers with memory decoding off");
    }
    pci_set_bar_address(d->pci.slot, 0, to);
    pci_write16(d->pci.slot, PCI_COMMAND, command);
    if (pci_bar_address(d->pci.slot, 0) != to) fail("BAR 0 did not take its new address");
    d->pci.bar = to;
}

static void check_moved_bar(struct virtio_pci *d)
{
    uint64_t from = d->pci.bar;
    uint64_t to = from == BAR_MOVED_TO ? BAR_MOVED_TO + d->bar_size : BAR_MOVED_TO;
    move_bar0(d, to);
    if (mmio_read32((uintptr_t)(from + d->pci.common + VIRTIO_COMMON_DEVICE_FEATURE_SELECT)) != PCI_ABSENT) {
        fail("the old BAR 0 address still answers");
    }
    if (mmio_read8(virtio_pci_common(&d->pci, VIRTIO_COMMON_DEVICE_STATUS)) != STATUS_ALL_SET) {
        fail("the device status changed in the move");
    }

    uint32_t seen = msix_interrupts;
    post_rng_buffer();
    notify_at(from, d);
    sleep_ms(QUIET_MS);
    if (virtq_has_used(&queue)) fail("a notification at the old BAR 0 address reached the device");
    notify_at(d->pci.bar, d);
    if (!interrupted(&msix_interrupts, seen)) fail("no MSI-X interrupt after the BAR moved");
    take_rng_result();
    say("bar0: moved to ");
    put_hex(d->pci.bar, 8);
    say(", old address reads all-ones, request done with an interrupt\r\n");
}

/* --- 6. INTx ---------------------------------------------------------------------------------- */

static void ioapic_write(uint32_t reg, uint32_t value)
{
    mmio_write32(IOAPIC_BASE + IOAPIC_REGISTER_SELECT, reg);
    mmio_write32(IOAPIC_BASE + IOAPIC_WINDOW, value);
}

/* Pin `pin` to `vector` on APIC ID 0: fixed, physical, level-triggered, active low, unmasked. */
static void ioapic_route(uint8_t pin, uint8_t vector)
{
    ioapic_write(IOAPIC_REDIRECTION_TABLE + 2u * pin + 1, 0); /* destination in bits 56-63 */
    ioapic_write(IOAPIC_REDIRECTION_TABLE + 2u * pin, vector | IOAPIC_LEVEL_TRIGGERED | IOAPIC_ACTIVE_LOW);
}

static uint8_t read_isr(const struct virtio_pci *d)
{
    return mmio_read8((uintptr_t)(d->pci.bar + d->pci.isr)); /* §4.1.4.5: reading clears it */
}

/* After the ISR status is read the line falls; waits until no interrupt came for QUIET_MS. */
static void wait_for_quiet_line(void)
{
    for (int round = 0; round < TIMEOUT_MS / QUIET_MS; ++round) {
        uint32_t seen = intx_interrupts;
        sleep_ms(QUIET_MS);
        if (intx_interrupts == seen) return;
    }
    fail("INTx kept interrupting after the ISR status was read");
}

/* The handler only EOIs: while the ISR status is unread, kvmlet must assert the line again after
 * each EOI (the resample), so a second interrupt arrives for the same request. */
static void intx_request(const struct virtio_pci *d, uint8_t pin)
{
    uint32_t seen = intx_interrupts;
    post_rng_buffer();
    notify_at(d->pci.bar, d);
    if (!interrupted(&intx_interrupts, seen)) fail("no INTx interrupt for the used buffer");
    if (!interrupted(&intx_interrupts, seen + 1)) fail("INTx not asserted again after EOI with the ISR unread");
    uint8_t isr = read_isr(d);
    if (!(isr & VIRTIO_ISR_QUEUE)) fail("the ISR status does not show a queue interrupt");
    wait_for_quiet_line();
    if (read_isr(d) != 0) fail("reading the ISR status did not clear it");
    take_rng_result();
    say("intx: interrupt on vector ");
    serial_put_dec(VECTOR_INTX);
    say(" from IOAPIC pin ");
    serial_put_dec(pin);
    say(", re-asserted after EOI until ISR ");
    put_hex(isr, 2);
    say(" was read\r\n");
}

static void check_intx(const struct virtio_pci *d)
{
    uint8_t slot = d->pci.slot;
    if (pci_read8(slot, PCI_INTERRUPT_PIN) != PCI_INTERRUPT_PIN_INTA) fail("the function does not use INTA");
    if (pci_read16(slot, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE) fail("INTx is disabled in the command register");
    set_msix_control(d, 0, MSIX_CONTROL_ENABLE);
    uint8_t pin = (uint8_t)(PCI_INTX_FIRST_PIN + slot % PCI_INTX_PINS);
    ioapic_route(pin, VECTOR_INTX);
    uint32_t msix_seen = msix_interrupts;
    intx_request(d, pin);
    intx_request(d, pin);
    if (msix_interrupts != msix_seen) fail("an MSI-X interrupt arrived with MSI-X disabled");
    say("intx: second request interrupted too\r\n");
}

void guest_main(void)
{
    struct virtio_pci dev = {0};
    find_capabilities(&dev, enumerate_bus());
    size_bar0(&dev);
    read_through_pci_cfg_window(&dev);
    init_rng(&dev);
    enable_msix(&dev);
    enable_interrupts();
    msix_request(&dev);
    msix_masked_request(&dev);
    check_moved_bar(&dev);
    check_intx(&dev);
    say("virtio-pci: ok\r\n");
    guest_reset();
}
