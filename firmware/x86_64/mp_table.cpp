#include "firmware/x86_64/mp_table.hpp"

#include <fmt/format.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

#include "firmware/checksum.hpp"
#include "firmware/x86_64/layout.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::x86_64 {
namespace {

// Intel MultiProcessor Specification 1.4, chapter 4 "MP Configuration Table".
constexpr std::array<char, 4> floating_pointer_signature{'_', 'M', 'P', '_'};
constexpr std::array<char, 4> config_table_signature{'P', 'C', 'M', 'P'};
constexpr std::uint8_t spec_rev_1_4 = 4;
constexpr std::array<char, 8> oem_id{'K', 'V', 'M', 'L', 'E', 'T', ' ', ' '};
constexpr std::array<char, 12> product_id{'K', 'V', 'M', 'L', 'E', 'T', ' ', 'V', 'M', ' ', ' ', ' '};
// §4.3 Table 4-3 "Base MP Configuration Table Entry Types".
constexpr std::uint8_t entry_processor = 0;
constexpr std::uint8_t entry_bus = 1;
constexpr std::uint8_t entry_io_apic = 2;
constexpr std::uint8_t entry_io_interrupt = 3;
constexpr std::uint8_t entry_local_interrupt = 4;
constexpr std::uint8_t cpu_enabled = 1u << 0;    // §4.3.1 CPU flags: EN
constexpr std::uint8_t cpu_bootstrap = 1u << 1;  // BP
constexpr std::uint8_t io_apic_enabled = 1u << 0;
// §4.3.4 Table 4-8 "Interrupt Type Values".
constexpr std::uint8_t interrupt_int = 0;
constexpr std::uint8_t interrupt_nmi = 1;
constexpr std::uint8_t interrupt_extint = 3;
constexpr std::uint16_t polarity_trigger_conform_to_bus = 0;
constexpr std::uint8_t isa_bus_id = 0;
constexpr std::array<char, 6> isa_bus_type{'I', 'S', 'A', ' ', ' ', ' '};  // Table 4-7
constexpr std::uint8_t isa_irq_count = 16;
constexpr std::uint8_t all_local_apics = 0xff;
// The versions KVM's in-kernel local APIC and I/O APIC report (APIC version register, IOAPICVER).
constexpr std::uint8_t local_apic_version = 0x14;
constexpr std::uint8_t io_apic_version = 0x11;

struct FloatingPointer {  // §4.1 Figure 4-1
    std::array<char, 4> signature;
    std::uint32_t config_table;  // physical address
    std::uint8_t length;         // in 16-byte paragraphs
    std::uint8_t spec_rev;
    std::uint8_t checksum;
    std::uint8_t feature1;  // 0: the configuration table is present, no default configuration
    std::uint8_t feature2;  // bit 7 (IMCRP) clear: virtual wire mode
    std::array<std::uint8_t, 3> feature3_5;
};
static_assert(sizeof(FloatingPointer) == 16);

struct ConfigHeader {  // §4.2 Figure 4-2
    std::array<char, 4> signature;
    std::uint16_t base_table_length;
    std::uint8_t spec_rev;
    std::uint8_t checksum;
    std::array<char, 8> oem_id;
    std::array<char, 12> product_id;
    std::uint32_t oem_table_pointer;
    std::uint16_t oem_table_size;
    std::uint16_t entry_count;
    std::uint32_t local_apic_address;
    std::uint16_t extended_table_length;
    std::uint8_t extended_table_checksum;
    std::uint8_t reserved;
};
static_assert(sizeof(ConfigHeader) == 44);

struct ProcessorEntry {  // §4.3.1 Figure 4-4
    std::uint8_t type;
    std::uint8_t local_apic_id;
    std::uint8_t local_apic_version;
    std::uint8_t cpu_flags;
    std::uint32_t cpu_signature;  // 0: Linux reads the CPU's own CPUID instead
    std::uint32_t feature_flags;
    std::array<std::uint32_t, 2> reserved;
};
static_assert(sizeof(ProcessorEntry) == 20);

struct BusEntry {  // §4.3.2 Figure 4-5
    std::uint8_t type;
    std::uint8_t bus_id;
    std::array<char, 6> bus_type;
};
static_assert(sizeof(BusEntry) == 8);

struct IoApicEntry {  // §4.3.3 Figure 4-6
    std::uint8_t type;
    std::uint8_t io_apic_id;
    std::uint8_t io_apic_version;
    std::uint8_t flags;
    std::uint32_t address;
};
static_assert(sizeof(IoApicEntry) == 8);

struct InterruptEntry {  // §4.3.4 Figure 4-7 (I/O) and §4.3.5 Figure 4-8 (local): the same layout
    std::uint8_t type;
    std::uint8_t interrupt_type;
    std::uint16_t flags;
    std::uint8_t source_bus_id;
    std::uint8_t source_bus_irq;
    std::uint8_t destination_apic_id;
    std::uint8_t destination_pin;  // INTIN# of the I/O APIC, or LINTIN# of the local APIC
};
static_assert(sizeof(InterruptEntry) == 8);

constexpr std::size_t config_table_size(std::size_t cpus) {
    return sizeof(ConfigHeader) + cpus * sizeof(ProcessorEntry) + sizeof(BusEntry) + sizeof(IoApicEntry) +
           (isa_irq_count + 2) * sizeof(InterruptEntry);
}
static_assert(config_table_size(mp_table_max_cpus) <=
              mp_config_table_end.value - mp_config_table_start.value);

class ConfigTable {
public:
    template <class Entry>
    void add(Entry const& entry) {
        auto const bytes = std::as_bytes(std::span{&entry, 1});
        bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
        ++entries_;
    }

    // The header in front of the entries, with the checksum over the whole base table.
    std::vector<std::byte> finish() const {
        ConfigHeader header{};
        header.signature = config_table_signature;
        header.base_table_length = static_cast<std::uint16_t>(sizeof header + bytes_.size());
        header.spec_rev = spec_rev_1_4;
        header.oem_id = oem_id;
        header.product_id = product_id;
        header.entry_count = entries_;
        header.local_apic_address = static_cast<std::uint32_t>(lapic_start.value);
        std::vector<std::byte> table(sizeof header);
        std::memcpy(table.data(), &header, sizeof header);
        table.insert(table.end(), bytes_.begin(), bytes_.end());
        table[offsetof(ConfigHeader, checksum)] = std::byte{firmware::checksum_byte(table)};
        return table;
    }

private:
    std::vector<std::byte> bytes_;
    std::uint16_t entries_ = 0;
};

void add_interrupts(ConfigTable& table, std::uint8_t io_apic_id) {
    for (std::uint8_t irq = 0; irq < isa_irq_count; ++irq)
        table.add(InterruptEntry{entry_io_interrupt, interrupt_int, polarity_trigger_conform_to_bus,
                                 isa_bus_id, irq, io_apic_id, irq});
    table.add(InterruptEntry{entry_local_interrupt, interrupt_extint, polarity_trigger_conform_to_bus,
                             isa_bus_id, 0, all_local_apics, 0});
    table.add(InterruptEntry{entry_local_interrupt, interrupt_nmi, polarity_trigger_conform_to_bus,
                             isa_bus_id, 0, all_local_apics, 1});
}

std::vector<std::byte> config_table(std::uint8_t cpus) {
    ConfigTable table;
    for (std::uint8_t id = 0; id < cpus; ++id) {
        auto const flags = static_cast<std::uint8_t>(cpu_enabled | (id == 0 ? cpu_bootstrap : 0));
        table.add(ProcessorEntry{entry_processor, id, local_apic_version, flags, 0, 0, {}});
    }
    table.add(BusEntry{entry_bus, isa_bus_id, isa_bus_type});
    std::uint8_t const io_apic_id = cpus;
    table.add(IoApicEntry{entry_io_apic, io_apic_id, io_apic_version, io_apic_enabled,
                          static_cast<std::uint32_t>(ioapic_start.value)});
    add_interrupts(table, io_apic_id);
    return table.finish();
}

FloatingPointer floating_pointer() {
    FloatingPointer pointer{};
    pointer.signature = floating_pointer_signature;
    pointer.config_table = static_cast<std::uint32_t>(mp_config_table_start.value);
    pointer.length = sizeof(FloatingPointer) / 16;
    pointer.spec_rev = spec_rev_1_4;
    pointer.checksum = firmware::checksum_byte(std::as_bytes(std::span{&pointer, 1}));
    return pointer;
}

}  // namespace

void write_mp_table(GuestMemory const& memory, std::uint32_t cpus) {
    if (cpus == 0 || cpus > mp_table_max_cpus)
        throw Error(fmt::format("mptable: {} CPUs; the MP table describes 1 to {}", cpus, mp_table_max_cpus));
    auto const table = config_table(static_cast<std::uint8_t>(cpus));
    if (!memory.write_bytes(mp_config_table_start, table) ||
        !memory.write(mp_floating_pointer_start, floating_pointer()))
        throw Error(fmt::format("mptable: the MP table at {:#x} and {:#x} does not fit in guest RAM",
                                mp_floating_pointer_start.value, mp_config_table_start.value));
}

}  // namespace kvmlet::x86_64
