#include "firmware/acpi/resource_template.hpp"

#include <fmt/format.h>

#include <limits>

#include "vmm/base/error.hpp"

namespace kvmlet::firmware::acpi::resource {
namespace {

// §6.4.2 small descriptors: one tag byte, bits 6:3 the item name, bits 2:0 the length that follows.
constexpr std::uint8_t irq_no_flags_tag = 0x22;  // item 0x04, length 2
constexpr std::uint8_t io_tag = 0x47;            // item 0x08, length 7
constexpr std::uint8_t end_tag = 0x79;           // item 0x0f, length 1
// §6.4.3 large descriptors: bit 7 set, the item name, then a 16-bit length of what follows.
constexpr std::uint8_t memory32_fixed_tag = 0x86;
constexpr std::uint8_t dword_address_tag = 0x87;
constexpr std::uint8_t word_address_tag = 0x88;
constexpr std::uint8_t extended_interrupt_tag = 0x89;
constexpr std::uint8_t qword_address_tag = 0x8a;

constexpr std::uint8_t io_decode_16 = 1u << 0;       // §6.4.2.5 Information: _DEC
constexpr std::uint8_t memory_read_write = 1u << 0;  // _RW, in Memory32Fixed and in memory type flags
constexpr std::uint8_t max_isa_irq = 15;

// §6.4.3.6 Extended Interrupt Descriptor, byte 3.
constexpr std::uint8_t interrupt_consumer = 1u << 0;
constexpr std::uint8_t interrupt_edge = 1u << 1;        // _HE
constexpr std::uint8_t interrupt_active_low = 1u << 2;  // _LL
constexpr std::uint8_t interrupt_shared = 1u << 3;      // _SHR

// §6.4.3.5 Address Space Descriptors: resource type, general flags, type-specific flags.
constexpr std::uint8_t space_memory = 0;
constexpr std::uint8_t space_io = 1;
constexpr std::uint8_t space_bus_number = 2;
constexpr std::uint8_t general_producer_fixed = (1u << 3) | (1u << 2);  // _MAF, _MIF; bit 0 clear: producer
constexpr std::uint8_t io_entire_range = 3;                             // _RNG
constexpr std::uint8_t memory_cacheable = 1u << 1;                      // _MEM = 1

void append(Bytes& out, Bytes const& more) {
    out.insert(out.end(), more.begin(), more.end());
}

template <class T>
void append_le(Bytes& out, T value) {
    for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

// A large descriptor: the tag, the length of `body`, `body`.
Bytes large(std::uint8_t tag, Bytes const& body) {
    Bytes out{tag};
    append_le(out, static_cast<std::uint16_t>(body.size()));
    append(out, body);
    return out;
}

// Granularity, min, max, translation offset and length, in T's width.
template <class T>
Bytes address_space(std::uint8_t tag, std::uint8_t type, std::uint8_t type_flags, T min, T max) {
    if (min > max || (min == 0 && max == std::numeric_limits<T>::max()))
        throw Error(
            fmt::format("acpi: address range [{:#x}, {:#x}] is empty or its length does not fit", min, max));
    Bytes body{type, general_producer_fixed, type_flags};
    append_le(body, T{0});
    append_le(body, min);
    append_le(body, max);
    append_le(body, T{0});
    append_le(body, static_cast<T>(max - min + 1));
    return large(tag, body);
}

std::uint8_t memory_flags(Cacheability cacheability) {
    return static_cast<std::uint8_t>(memory_read_write |
                                     (cacheability == Cacheability::cacheable ? memory_cacheable : 0));
}

}  // namespace

Bytes io(std::uint16_t min, std::uint16_t max, std::uint8_t alignment, std::uint8_t length) {
    Bytes out{io_tag, io_decode_16};
    append_le(out, min);
    append_le(out, max);
    out.push_back(alignment);
    out.push_back(length);
    return out;
}

Bytes irq_no_flags(std::uint8_t irq) {
    if (irq > max_isa_irq) throw Error(fmt::format("acpi: IRQ {} is not an ISA IRQ (0 to 15)", irq));
    Bytes out{irq_no_flags_tag};
    append_le(out, static_cast<std::uint16_t>(1u << irq));
    return out;
}

Bytes memory32_fixed(std::uint32_t base, std::uint32_t length) {
    Bytes body{memory_read_write};
    append_le(body, base);
    append_le(body, length);
    return large(memory32_fixed_tag, body);
}

Bytes extended_interrupt(std::uint32_t gsi, Trigger trigger, Polarity polarity, Sharing sharing) {
    std::uint8_t flags = interrupt_consumer;
    if (trigger == Trigger::edge) flags |= interrupt_edge;
    if (polarity == Polarity::active_low) flags |= interrupt_active_low;
    if (sharing == Sharing::shared) flags |= interrupt_shared;
    Bytes body{flags, 1};  // one interrupt in the table
    append_le(body, gsi);
    return large(extended_interrupt_tag, body);
}

Bytes word_bus_number(std::uint16_t min, std::uint16_t max) {
    return address_space<std::uint16_t>(word_address_tag, space_bus_number, 0, min, max);
}

Bytes word_io(std::uint16_t min, std::uint16_t max) {
    return address_space<std::uint16_t>(word_address_tag, space_io, io_entire_range, min, max);
}

Bytes dword_memory(std::uint32_t min, std::uint32_t max, Cacheability cacheability) {
    return address_space<std::uint32_t>(dword_address_tag, space_memory, memory_flags(cacheability), min,
                                        max);
}

Bytes qword_memory(std::uint64_t min, std::uint64_t max, Cacheability cacheability) {
    return address_space<std::uint64_t>(qword_address_tag, space_memory, memory_flags(cacheability), min,
                                        max);
}

Bytes resource_template(std::vector<Bytes> const& descriptors) {
    Bytes contents;
    for (auto const& d : descriptors) append(contents, d);
    contents.push_back(end_tag);
    contents.push_back(0);
    return aml::buffer(contents);
}

}  // namespace kvmlet::firmware::acpi::resource
