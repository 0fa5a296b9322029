#include "firmware/x86_64/madt.hpp"

#include <algorithm>
#include <cstddef>

#include "firmware/acpi/sdt.hpp"
#include "firmware/x86_64/layout.hpp"

namespace kvmlet::x86_64 {
namespace {

namespace acpi = firmware::acpi;

constexpr acpi::Signature madt_signature{'A', 'P', 'I', 'C'};
constexpr std::uint8_t madt_revision = 5;       // ACPI 6.3 and later
constexpr std::uint32_t pcat_compat = 1u << 0;  // §5.2.12 Table 5.20 "Multiple APIC Flags"

// §5.2.12 Table 5.21 "Interrupt Controller Structure Types".
constexpr std::uint8_t type_local_apic = 0;
constexpr std::uint8_t type_io_apic = 1;
constexpr std::uint8_t type_local_apic_nmi = 4;
constexpr std::uint8_t type_local_x2apic = 9;
constexpr std::uint8_t type_local_x2apic_nmi = 0x0a;

constexpr std::uint32_t processor_enabled = 1u << 0;  // Table 5.23 "Local APIC Flags"
constexpr std::uint16_t inti_conforming = 0;          // Table 5.26 "MPS INTI Flags": as the bus says
constexpr std::uint8_t lint1 = 1;
constexpr std::uint8_t all_processors_uid = 0xff;
constexpr std::uint32_t all_x2apic_processors_uid = 0xffff'ffff;
constexpr std::uint32_t max_xapic_id = 254;  // 0xff is the broadcast ID

#pragma pack(push, 1)

struct MadtHead {
    std::uint32_t local_apic_address;
    std::uint32_t flags;
};
static_assert(sizeof(MadtHead) == 8);

struct LocalApic {  // §5.2.12.2 Table 5.22
    std::uint8_t type;
    std::uint8_t length;
    std::uint8_t processor_uid;
    std::uint8_t apic_id;
    std::uint32_t flags;
};
static_assert(sizeof(LocalApic) == 8);

struct IoApic {  // §5.2.12.3 Table 5.24
    std::uint8_t type;
    std::uint8_t length;
    std::uint8_t io_apic_id;
    std::uint8_t reserved;
    std::uint32_t address;
    std::uint32_t gsi_base;
};
static_assert(sizeof(IoApic) == 12);

struct LocalApicNmi {  // §5.2.12.7 Table 5.30
    std::uint8_t type;
    std::uint8_t length;
    std::uint8_t processor_uid;
    std::uint16_t flags;
    std::uint8_t lint;
};
static_assert(sizeof(LocalApicNmi) == 6);

struct LocalX2Apic {  // §5.2.12.12 Table 5.37
    std::uint8_t type;
    std::uint8_t length;
    std::uint16_t reserved;
    std::uint32_t x2apic_id;
    std::uint32_t flags;
    std::uint32_t processor_uid;
};
static_assert(sizeof(LocalX2Apic) == 16);

struct LocalX2ApicNmi {  // §5.2.12.13 Table 5.38
    std::uint8_t type;
    std::uint8_t length;
    std::uint16_t flags;
    std::uint32_t processor_uid;
    std::uint8_t lint;
    std::uint8_t reserved[3];
};
static_assert(sizeof(LocalX2ApicNmi) == 12);

#pragma pack(pop)

template <class Entry>
constexpr std::uint8_t length_of = static_cast<std::uint8_t>(sizeof(Entry));

void add_processors(std::vector<std::uint8_t>& body, std::uint32_t cpus) {
    for (std::uint32_t id = 0; id < cpus; ++id) {
        if (id <= max_xapic_id) {
            auto const id8 = static_cast<std::uint8_t>(id);
            acpi::append_struct(
                body, LocalApic{type_local_apic, length_of<LocalApic>, id8, id8, processor_enabled});
        } else {
            acpi::append_struct(
                body, LocalX2Apic{type_local_x2apic, length_of<LocalX2Apic>, 0, id, processor_enabled, id});
        }
    }
}

}  // namespace

std::vector<std::uint8_t> make_madt(std::uint32_t cpus) {
    std::vector<std::uint8_t> body;
    acpi::append_struct(body, MadtHead{static_cast<std::uint32_t>(lapic_start.value), pcat_compat});
    add_processors(body, cpus);
    auto const io_apic_id = static_cast<std::uint8_t>(std::min(cpus, max_xapic_id));
    acpi::append_struct(body, IoApic{type_io_apic, length_of<IoApic>, io_apic_id, 0,
                                     static_cast<std::uint32_t>(ioapic_start.value), 0});
    acpi::append_struct(body, LocalApicNmi{type_local_apic_nmi, length_of<LocalApicNmi>, all_processors_uid,
                                           inti_conforming, lint1});
    if (cpus > max_xapic_id + 1)
        acpi::append_struct(body, LocalX2ApicNmi{type_local_x2apic_nmi,
                                                 length_of<LocalX2ApicNmi>,
                                                 inti_conforming,
                                                 all_x2apic_processors_uid,
                                                 lint1,
                                                 {}});
    return acpi::make_table(madt_signature, madt_revision, body);
}

}  // namespace kvmlet::x86_64
