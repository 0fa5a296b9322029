#include "firmware/x86_64/dsdt.hpp"

#include <fmt/format.h>

#include "firmware/acpi/aml.hpp"
#include "firmware/acpi/resource_template.hpp"
#include "firmware/acpi/sdt.hpp"
#include "firmware/x86_64/layout.hpp"

namespace kvmlet::x86_64 {
namespace {

namespace acpi = firmware::acpi;
namespace aml = firmware::acpi::aml;
namespace res = firmware::acpi::resource;
using aml::Bytes;

constexpr acpi::Signature dsdt_signature{'D', 'S', 'D', 'T'};
constexpr std::uint8_t dsdt_revision = 2;  // §5.2.11.1: 2 and up, integers are 64 bits

// The I/O ports of PCI configuration mechanism #1 (PCI 3.0 §3.2.2.3.2), which the host bridge
// decodes itself: its window to bus 0 is every port but these.
constexpr std::uint16_t pci_config_ports_start = 0xcf8;
constexpr std::uint16_t pci_config_ports_end = 0xcff;
constexpr std::uint16_t io_space_end = 0xffff;
constexpr std::uint8_t pci_pins = 4;                 // INTA..INTD, _PRT pins 0..3
constexpr std::uint32_t prt_all_functions = 0xffff;  // §6.2.13: _PRT Address, function field
constexpr std::uint32_t pci_device_shift = 16;

Bytes hid(char const* eisa_id) {
    return aml::name("_HID", aml::eisa_id(eisa_id));
}

Bytes crs(std::vector<Bytes> const& descriptors) {
    return aml::name("_CRS", res::resource_template(descriptors));
}

Bytes root_bridge_resources(std::uint64_t ram_size) {
    std::uint64_t const mmio64_start = pci_mmio64_start(ram_size).value;
    return crs({
        res::word_bus_number(0, pci_last_bus),
        res::word_io(0, pci_config_ports_start - 1),
        res::word_io(pci_config_ports_end + 1, io_space_end),
        res::dword_memory(static_cast<std::uint32_t>(pci_mmio32_start.value),
                          static_cast<std::uint32_t>(pci_mmio32_end.value - 1),
                          res::Cacheability::non_cacheable),
        res::qword_memory(mmio64_start, mmio64_start + pci_mmio64_size - 1, res::Cacheability::cacheable),
    });
}

// §6.2.13 _PRT: Package { Address (device << 16 | 0xffff), Pin, Source 0, Source Index = the GSI }.
// INTA of slot s is pin pci_intx_first_irq + s % pci_intx_irqs; INTB..INTD follow it round the
// pins, as a bridge's swizzle would (PCI-to-PCI Bridge 1.2 §9.1).
Bytes routing_table(std::vector<std::uint8_t> const& slots) {
    std::vector<Bytes> entries;
    for (std::uint8_t slot : slots) {
        for (std::uint8_t pin = 0; pin < pci_pins; ++pin) {
            std::uint32_t const gsi = pci_intx_first_irq + (std::uint32_t{slot} + pin) % pci_intx_irqs;
            entries.push_back(
                aml::package({aml::integer(std::uint32_t{slot} << pci_device_shift | prt_all_functions),
                              aml::integer(pin), aml::zero(), aml::integer(gsi)}));
        }
    }
    return aml::name("_PRT", aml::package(entries));
}

Bytes pci_root(AcpiConfig const& config) {
    return aml::device("PCI0", {hid("PNP0A03"), aml::name("_SEG", aml::zero()),
                                aml::name("_BBN", aml::zero()), aml::name("_UID", aml::zero()),
                                root_bridge_resources(config.ram_size), routing_table(config.pci_slots)});
}

// Linux checks that an MCFG region is reserved by a PNP0C01/PNP0C02 device (or by e820) first.
Bytes motherboard_resources() {
    static_assert(pci_ecam_start.value + pci_ecam_size <= mmio_hole_end.value);
    return aml::device("MBRD", {hid("PNP0C02"), aml::name("_UID", aml::zero()),
                                crs({res::memory32_fixed(static_cast<std::uint32_t>(pci_ecam_start.value),
                                                         static_cast<std::uint32_t>(pci_ecam_size))})});
}

Bytes com1() {
    return aml::device("COM1", {hid("PNP0501"), aml::name("_UID", aml::zero()),
                                crs({res::io(serial_com1_base, serial_com1_base, 1, serial_com1_ports),
                                     res::irq_no_flags(serial_com1_irq)})});
}

// The i8042 with its keyboard, for Linux's i8042 driver: the FADT's IA-PC boot flags say "no
// 8042", so the driver probes the controller only where the DSDT describes one (PNP0303, a
// PC/AT keyboard controller). No PNP0F13 mouse: the driver then skips its AUX probes.
Bytes keyboard_controller() {
    return aml::device("PS2K", {hid("PNP0303"), crs({res::io(i8042_data_port, i8042_data_port, 1, 1),
                                                     res::io(i8042_command_port, i8042_command_port, 1, 1),
                                                     res::irq_no_flags(i8042_keyboard_irq)})});
}

// A hardware-reduced machine has no fixed power button (§4.8.3.1.1): the button is a PNP0C0C
// device, and a Generic Event Device (ACPI0013, §5.6.9) on its own interrupt notifies it. Linux's
// GED driver runs _EVT with the interrupt's number when it fires; there is only one event, so
// _EVT does not look at it. Linux's button driver then reports KEY_POWER.
constexpr std::uint8_t notify_button_pressed = 0x80;

std::vector<Bytes> power_button() {
    return {aml::device("PWRB", {hid("PNP0C0C"), aml::name("_UID", aml::zero())}),
            aml::device("GED0",
                        {aml::name("_HID", aml::string("ACPI0013")), aml::name("_UID", aml::zero()),
                         crs({res::extended_interrupt(acpi_power_button_irq, res::Trigger::edge,
                                                      res::Polarity::active_high, res::Sharing::exclusive)}),
                         aml::method("_EVT", 1, {aml::notify("PWRB", notify_button_pressed)})})};
}

// Linux's virtio_mmio driver matches this _HID ("LNRO0005", Linaro's ID for virtio-mmio).
Bytes virtio_mmio(std::size_t index, AcpiMmioDevice const& device) {
    return aml::device(fmt::format("VR{:02X}", index),
                       {aml::name("_HID", aml::string("LNRO0005")), aml::name("_UID", aml::integer(index)),
                        crs({res::memory32_fixed(static_cast<std::uint32_t>(device.base.value),
                                                 static_cast<std::uint32_t>(device.size)),
                             res::extended_interrupt(device.gsi, res::Trigger::edge,
                                                     res::Polarity::active_high, res::Sharing::exclusive)})});
}

}  // namespace

std::vector<std::uint8_t> make_dsdt(AcpiConfig const& config) {
    std::vector<Bytes> devices;
    if (config.pci) {
        devices.push_back(pci_root(config));
        devices.push_back(motherboard_resources());
    }
    devices.push_back(com1());
    devices.push_back(keyboard_controller());
    if (config.power_button)
        for (Bytes& device : power_button()) devices.push_back(std::move(device));
    for (std::size_t i = 0; i < config.virtio_mmio.size(); ++i)
        devices.push_back(virtio_mmio(i, config.virtio_mmio[i]));
    Bytes aml = aml::scope("\\_SB_", devices);
    Bytes const s5 = aml::name(
        "\\_S5_", aml::package({aml::integer(acpi_s5_sleep_type), aml::zero(), aml::zero(), aml::zero()}));
    aml.insert(aml.end(), s5.begin(), s5.end());
    return acpi::make_table(dsdt_signature, dsdt_revision, aml);
}

}  // namespace kvmlet::x86_64
