#include "devices/pci/config_space.hpp"

#include <fmt/format.h>

#include <bit>
#include <cstring>

#include "vmm/base/error.hpp"

namespace kvmlet::pci {
namespace {

void put16(std::span<std::uint8_t> bytes, std::uint32_t offset, std::uint16_t value) {
    std::memcpy(&bytes[offset], &value, sizeof value);
}
void put32(std::span<std::uint8_t> bytes, std::uint32_t offset, std::uint32_t value) {
    std::memcpy(&bytes[offset], &value, sizeof value);
}

}  // namespace

ConfigSpace::ConfigSpace(Identity const& identity, std::uint8_t interrupt_pin) {
    put16(bytes_, reg::vendor_id, identity.vendor);
    put16(bytes_, reg::device_id, identity.device);
    bytes_[reg::revision_id] = identity.revision;
    bytes_[reg::class_code] = static_cast<std::uint8_t>(identity.class_code);
    bytes_[reg::class_code + 1] = static_cast<std::uint8_t>(identity.class_code >> 8);
    bytes_[reg::class_code + 2] = static_cast<std::uint8_t>(identity.class_code >> 16);
    put16(bytes_, reg::subsystem_vendor_id, identity.subsystem_vendor);
    put16(bytes_, reg::subsystem_id, identity.subsystem);
    bytes_[reg::interrupt_pin] = interrupt_pin;
    put16(writable_, reg::command, command::writable);
    writable_[reg::cache_line_size] = 0xff;
    writable_[reg::latency_timer] = 0xff;
    writable_[reg::interrupt_line] = 0xff;
}

void ConfigSpace::load(StateReader& in) {
    auto const saved = in.get<decltype(bytes_)>();
    for (std::size_t i = 0; i < config_size; ++i)
        bytes_[i] = static_cast<std::uint8_t>((bytes_[i] & ~writable_[i]) | (saved[i] & writable_[i]));
}

void ConfigSpace::add_memory_bar(std::uint32_t index, std::uint64_t size, bool is_64bit, bool prefetchable) {
    if (index >= bar_count || (is_64bit && index + 1 >= bar_count) || bar_taken_[index] ||
        (is_64bit && bar_taken_[index + 1]))
        throw Error(fmt::format("pci: BAR {} is not free", index));
    if (size < 16 || !std::has_single_bit(size) || (!is_64bit && size > (std::uint64_t{1} << 31)))
        throw Error(fmt::format("pci: BAR size {:#x} is not a power of two in range", size));
    bars_[index] = Bar{size, is_64bit};
    bar_taken_[index] = true;
    if (is_64bit) bar_taken_[index + 1] = true;
    std::uint32_t flags = (is_64bit ? bar::memory_64bit : 0) | (prefetchable ? bar::prefetchable : 0);
    put32(bytes_, reg::bar0 + 4 * index, flags);
    // The address bits below the size read as zero: that is what BAR sizing reads back.
    std::uint64_t const mask = ~(size - 1);
    put32(writable_, reg::bar0 + 4 * index, static_cast<std::uint32_t>(mask) & ~bar::memory_flags_mask);
    if (is_64bit) put32(writable_, reg::bar0 + 4 * (index + 1), static_cast<std::uint32_t>(mask >> 32));
}

std::uint8_t ConfigSpace::add_capability(std::span<std::uint8_t const> body,
                                         std::span<std::uint8_t const> writable) {
    std::size_t const offset = next_capability_;  // up to config_size: then nothing fits
    if (body.size() < 2 || offset + body.size() > config_size ||
        (!writable.empty() && writable.size() != body.size()))
        throw Error("pci: capability does not fit in configuration space");
    std::memcpy(&bytes_[offset], body.data(), body.size());
    bytes_[offset + 1] = 0;
    if (!writable.empty()) std::memcpy(&writable_[offset], writable.data(), writable.size());
    writable_[offset] = writable_[offset + 1] = 0;
    if (last_capability_ == 0) {
        bytes_[reg::capabilities_pointer] = static_cast<std::uint8_t>(offset);
        put16(bytes_, reg::status, read16(reg::status) | status::capabilities_list);
    } else {
        bytes_[last_capability_ + 1] = static_cast<std::uint8_t>(offset);
    }
    last_capability_ = static_cast<std::uint8_t>(offset);
    // §6.7: capabilities are DWORD aligned.
    next_capability_ = static_cast<std::uint32_t>((offset + body.size() + 3) & ~std::size_t{3});
    return last_capability_;
}

void ConfigSpace::read(std::uint32_t offset, std::span<std::byte> data) const noexcept {
    for (std::size_t i = 0; i < data.size(); ++i) {
        std::uint64_t const at = std::uint64_t{offset} + i;
        data[i] = std::byte{at < config_size ? bytes_[at] : std::uint8_t{0}};
    }
}

void ConfigSpace::write(std::uint32_t offset, std::span<std::byte const> data) noexcept {
    for (std::size_t i = 0; i < data.size(); ++i) {
        std::uint64_t const at = std::uint64_t{offset} + i;
        if (at >= config_size) return;
        auto const value = std::to_integer<std::uint8_t>(data[i]);
        bytes_[at] = static_cast<std::uint8_t>((bytes_[at] & ~writable_[at]) | (value & writable_[at]));
    }
}

std::uint16_t ConfigSpace::read16(std::uint32_t offset) const noexcept {
    std::uint16_t value = 0;
    if (offset <= config_size - sizeof value) std::memcpy(&value, &bytes_[offset], sizeof value);
    return value;
}

std::uint32_t ConfigSpace::read32(std::uint32_t offset) const noexcept {
    std::uint32_t value = 0;
    if (offset <= config_size - sizeof value) std::memcpy(&value, &bytes_[offset], sizeof value);
    return value;
}

void ConfigSpace::set16(std::uint32_t offset, std::uint16_t value) noexcept {
    if (offset <= config_size - sizeof value) std::memcpy(&bytes_[offset], &value, sizeof value);
}

void ConfigSpace::set32(std::uint32_t offset, std::uint32_t value) noexcept {
    if (offset <= config_size - sizeof value) std::memcpy(&bytes_[offset], &value, sizeof value);
}

ConfigSpace::Bar ConfigSpace::bar(std::uint32_t index) const noexcept {
    return index < bar_count ? bars_[index] : Bar{};
}

std::uint64_t ConfigSpace::bar_address(std::uint32_t index) const noexcept {
    Bar const b = bar(index);
    if (b.size == 0) return 0;
    std::uint64_t address = read32(reg::bar0 + 4 * index) & ~bar::memory_flags_mask;
    if (b.is_64bit) address |= std::uint64_t{read32(reg::bar0 + 4 * (index + 1))} << 32;
    return address;
}

void ConfigSpace::set_bar_address(std::uint32_t index, std::uint64_t address) noexcept {
    Bar const b = bar(index);
    if (b.size == 0) return;
    std::uint32_t const flags = read32(reg::bar0 + 4 * index) & bar::memory_flags_mask;
    set32(reg::bar0 + 4 * index, (static_cast<std::uint32_t>(address) & ~bar::memory_flags_mask) | flags);
    if (b.is_64bit) set32(reg::bar0 + 4 * (index + 1), static_cast<std::uint32_t>(address >> 32));
}

}  // namespace kvmlet::pci
