#include "firmware/x86_64/acpi_tables.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>

#include "firmware/acpi/sdt.hpp"
#include "firmware/x86_64/dsdt.hpp"
#include "firmware/x86_64/layout.hpp"
#include "firmware/x86_64/madt.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::x86_64 {
namespace {

namespace acpi = firmware::acpi;
using Table = std::vector<std::uint8_t>;

// §5.2.9 Table 5.9 "FADT Format", ACPI 6.5: major revision 6, minor 5.
constexpr acpi::Signature fadt_signature{'F', 'A', 'C', 'P'};
constexpr std::uint8_t fadt_revision = 6;
constexpr std::uint8_t fadt_minor_revision = 5;
// §5.2.9.3 Table 5.11 "IA-PC Boot Architecture Flags". No LEGACY_DEVICES and no 8042: Linux then
// probes the i8042 only as the DSDT describes it (PS2K: the keyboard, no mouse, so none of the
// AUX probes that wait for replies). MSI_NOT_SUPPORTED stays clear.
constexpr std::uint16_t boot_arch_vga_not_present = 1u << 2;
constexpr std::uint16_t boot_arch_cmos_rtc_not_present = 1u << 5;
// §5.2.9 Table 5.10 "Fixed ACPI Description Table Fixed Feature Flags".
constexpr std::uint32_t flag_reset_reg_sup = 1u << 10;
constexpr std::uint32_t flag_hw_reduced_acpi = 1u << 20;
constexpr std::array<char, 8> hypervisor_vendor{'K', 'V', 'M', 'L', 'E', 'T', ' ', ' '};

// PCI Firmware Specification 3.3 §4.1.2 "MCFG Table Description".
constexpr acpi::Signature mcfg_signature{'M', 'C', 'F', 'G'};
constexpr std::uint8_t mcfg_revision = 1;
constexpr std::uint64_t ecam_bytes_per_bus = 1u << 20;  // 32 devices x 8 functions x 4 KiB
static_assert(pci_ecam_size == (pci_last_bus + 1u) * ecam_bytes_per_bus);

constexpr std::uint64_t table_alignment = 16;  // tidy, and where Linux scans for the RSDP

#pragma pack(push, 1)

struct FadtBody {                 // the FADT after its SdtHeader
    std::uint32_t firmware_ctrl;  // 0 with X_FIRMWARE_CTRL 0: no FACS (allowed when hardware-reduced)
    std::uint32_t dsdt;           // 0: X_DSDT says where
    std::uint8_t reserved0;
    std::uint8_t preferred_pm_profile;
    std::uint16_t sci_int;  // hardware-reduced: no SCI
    std::uint32_t smi_cmd;
    std::uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
    std::uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk, pm2_cnt_blk, pm_tmr_blk;
    std::uint32_t gpe0_blk, gpe1_blk;
    std::uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len, gpe0_blk_len, gpe1_blk_len, gpe1_base;
    std::uint8_t cst_cnt;
    std::uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
    std::uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
    std::uint16_t iapc_boot_arch;
    std::uint8_t reserved1;
    std::uint32_t flags;
    acpi::GenericAddress reset_reg;
    std::uint8_t reset_value;
    std::uint16_t arm_boot_arch;
    std::uint8_t fadt_minor_version;
    std::uint64_t x_firmware_ctrl;
    std::uint64_t x_dsdt;
    acpi::GenericAddress x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk, x_pm2_cnt_blk;
    acpi::GenericAddress x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
    acpi::GenericAddress sleep_control_reg;
    acpi::GenericAddress sleep_status_reg;
    std::array<char, 8> hypervisor_vendor_identity;
};
static_assert(sizeof(acpi::SdtHeader) + sizeof(FadtBody) == 276);
static_assert(sizeof(acpi::SdtHeader) + offsetof(FadtBody, iapc_boot_arch) == 109);
static_assert(sizeof(acpi::SdtHeader) + offsetof(FadtBody, flags) == 112);
static_assert(sizeof(acpi::SdtHeader) + offsetof(FadtBody, reset_reg) == 116);
static_assert(sizeof(acpi::SdtHeader) + offsetof(FadtBody, x_dsdt) == 140);
static_assert(sizeof(acpi::SdtHeader) + offsetof(FadtBody, sleep_control_reg) == 244);

struct McfgAllocation {  // PCI Firmware 3.3 Table 4-3
    std::uint64_t base_address;
    std::uint16_t segment;
    std::uint8_t start_bus;
    std::uint8_t end_bus;
    std::uint32_t reserved;
};
static_assert(sizeof(McfgAllocation) == 16);

#pragma pack(pop)

constexpr std::size_t mcfg_reserved_bytes = 8;  // between the header and the allocations

Table make_fadt(GuestAddress dsdt) {
    FadtBody fadt{};
    fadt.iapc_boot_arch = boot_arch_vga_not_present | boot_arch_cmos_rtc_not_present;
    fadt.flags = flag_hw_reduced_acpi | flag_reset_reg_sup;
    fadt.reset_reg = acpi::io_port_byte(acpi_reset_port);
    fadt.reset_value = acpi_reset_value;
    fadt.fadt_minor_version = fadt_minor_revision;
    fadt.x_dsdt = dsdt.value;
    fadt.sleep_control_reg = acpi::io_port_byte(acpi_sleep_control_port);
    fadt.sleep_status_reg = acpi::io_port_byte(acpi_sleep_status_port);
    fadt.hypervisor_vendor_identity = hypervisor_vendor;
    Table body;
    acpi::append_struct(body, fadt);
    return acpi::make_table(fadt_signature, fadt_revision, body);
}

Table make_mcfg() {
    Table body(mcfg_reserved_bytes, 0);
    acpi::append_struct(body, McfgAllocation{pci_ecam_start.value, 0, 0, pci_last_bus, 0});
    return acpi::make_table(mcfg_signature, mcfg_revision, body);
}

void check_config(AcpiConfig const& config) {
    if (config.cpus == 0 || config.cpus > acpi_max_cpus)
        throw Error(fmt::format("acpi: {} CPUs; the MADT describes 1 to {}", config.cpus, acpi_max_cpus));
    std::vector<std::uint8_t> slots = config.pci_slots;
    std::sort(slots.begin(), slots.end());
    if (std::adjacent_find(slots.begin(), slots.end()) != slots.end())
        throw Error("acpi: a PCI slot is listed twice");
    for (std::uint8_t slot : slots)
        if (slot == 0 || slot > acpi_max_pci_slot)
            throw Error(
                fmt::format("acpi: PCI slot {}; devices on bus 0 are 1 to {}", slot, acpi_max_pci_slot));
    if (config.virtio_mmio.size() > acpi_max_virtio_mmio)
        throw Error(fmt::format("acpi: {} virtio-mmio devices; at most {}", config.virtio_mmio.size(),
                                acpi_max_virtio_mmio));
    for (auto const& d : config.virtio_mmio)
        if (d.size == 0 || d.base.value > mmio_hole_end.value || d.size > mmio_hole_end.value - d.base.value)
            throw Error(fmt::format("acpi: virtio-mmio window [{:#x}, +{:#x}) is not below 4 GiB",
                                    d.base.value, d.size));
}

// Hands out 16-byte-aligned addresses in [acpi_tables_start, acpi_tables_end) in order.
class Placement {
public:
    GuestAddress take(std::size_t size) {
        GuestAddress const at{next_};
        next_ = (next_ + size + table_alignment - 1) / table_alignment * table_alignment;
        if (next_ > acpi_tables_end.value)
            throw Error(fmt::format("acpi: the tables need {} bytes from {:#x}; {} are reserved for them",
                                    next_ - acpi_tables_start.value, acpi_tables_start.value,
                                    acpi_tables_end.value - acpi_tables_start.value));
        return at;
    }

private:
    std::uint64_t next_ = acpi_tables_start.value;
};

void write(GuestMemory const& memory, GuestAddress at, std::span<std::uint8_t const> bytes) {
    if (!memory.write_bytes(at, std::as_bytes(bytes)))
        throw Error(fmt::format("acpi: the table at {:#x} does not fit in guest RAM", at.value));
}

}  // namespace

GuestAddress write_acpi_tables(GuestMemory const& memory, AcpiConfig const& config) {
    check_config(config);
    Table const dsdt = make_dsdt(config);
    Table const madt = make_madt(config.cpus);
    std::optional<Table> const mcfg = config.pci ? std::optional{make_mcfg()} : std::nullopt;
    std::size_t const fadt_size = sizeof(acpi::SdtHeader) + sizeof(FadtBody);
    std::size_t const xsdt_entries = mcfg ? 3 : 2;

    Placement place;
    GuestAddress const rsdp_at = place.take(sizeof(acpi::Rsdp));
    GuestAddress const xsdt_at = place.take(sizeof(acpi::SdtHeader) + xsdt_entries * sizeof(std::uint64_t));
    std::vector<GuestAddress> entries{place.take(fadt_size), place.take(madt.size())};
    if (mcfg) entries.push_back(place.take(mcfg->size()));
    GuestAddress const dsdt_at = place.take(dsdt.size());

    write(memory, dsdt_at, dsdt);
    write(memory, entries[0], make_fadt(dsdt_at));
    write(memory, entries[1], madt);
    if (mcfg) write(memory, entries[2], *mcfg);
    write(memory, xsdt_at, acpi::make_xsdt(entries));
    if (!memory.write(rsdp_at, acpi::make_rsdp(xsdt_at)))
        throw Error(fmt::format("acpi: the RSDP at {:#x} does not fit in guest RAM", rsdp_at.value));
    return rsdp_at;
}

}  // namespace kvmlet::x86_64
