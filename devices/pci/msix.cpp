#include "devices/pci/msix.hpp"

#include <fmt/format.h>

#include <cstring>

#include "vmm/base/error.hpp"

namespace kvmlet::pci {
namespace {

// §6.8.2.3 Message Control.
constexpr std::uint16_t control_enable = 1u << 15;
constexpr std::uint16_t control_function_mask = 1u << 14;
constexpr std::uint32_t message_control_offset = 2;
constexpr std::uint32_t capability_length = 12;

}  // namespace

Msix::Msix(std::uint16_t vectors, MsiRouter& router) : router_(router) {
    if (vectors == 0 || vectors > max_vectors) throw Error(fmt::format("pci: {} MSI-X vectors", vectors));
    entries_.resize(vectors);
}

void Msix::add_capability(ConfigSpace& config, std::uint8_t bar, std::uint32_t table_offset,
                          std::uint32_t pba_offset) {
    std::uint8_t body[capability_length] = {capability::msix, 0};
    std::uint16_t const control = static_cast<std::uint16_t>(entries_.size() - 1);
    std::uint32_t const table = table_offset | bar;
    std::uint32_t const pba = pba_offset | bar;
    std::memcpy(&body[2], &control, 2);
    std::memcpy(&body[4], &table, 4);
    std::memcpy(&body[8], &pba, 4);
    std::uint8_t writable[capability_length] = {};
    writable[3] = static_cast<std::uint8_t>((control_enable | control_function_mask) >> 8);
    capability_ = config.add_capability(body, writable);
}

void Msix::config_written(ConfigSpace const& config) noexcept {
    std::uint16_t const control = config.read16(capability_ + message_control_offset);
    std::lock_guard lock(mutex_);
    enabled_ = control & control_enable;
    function_masked_ = control & control_function_mask;
    deliver_pending();
}

void Msix::table_read(std::uint64_t offset, std::span<std::byte> data) const noexcept {
    std::memset(data.data(), 0, data.size());
    if ((data.size() != 4 && data.size() != 8) || offset % data.size() != 0 || offset >= table_size()) return;
    std::lock_guard lock(mutex_);
    Entry const& entry = entries_[offset / entry_size];
    std::uint32_t const words[4] = {entry.address_low, entry.address_high, entry.data, entry.control};
    std::memcpy(data.data(), &words[(offset % entry_size) / 4], data.size());
}

void Msix::table_write(std::uint64_t offset, std::span<std::byte const> data) noexcept {
    if ((data.size() != 4 && data.size() != 8) || offset % data.size() != 0 || offset >= table_size()) return;
    std::lock_guard lock(mutex_);
    Entry& entry = entries_[offset / entry_size];
    std::uint32_t* words[4] = {&entry.address_low, &entry.address_high, &entry.data, &entry.control};
    std::size_t const first = (offset % entry_size) / 4;
    for (std::size_t i = 0; i < data.size() / 4; ++i) {
        std::uint32_t value;
        std::memcpy(&value, data.data() + 4 * i, 4);
        // §6.8.2.9: only the Mask Bit of Vector Control is defined.
        *words[first + i] = first + i == 3 ? (value & 1) : value;
    }
    deliver_pending();
}

void Msix::pba_read(std::uint64_t offset, std::span<std::byte> data) const noexcept {
    std::memset(data.data(), 0, data.size());
    if ((data.size() != 4 && data.size() != 8) || offset % data.size() != 0 || offset >= pba_size()) return;
    std::lock_guard lock(mutex_);
    std::uint64_t bits = 0;
    for (std::size_t i = 0; i < data.size() * 8; ++i) {
        std::size_t const vector = offset * 8 + i;
        if (vector < entries_.size() && entries_[vector].pending) bits |= std::uint64_t{1} << i;
    }
    std::memcpy(data.data(), &bits, data.size());
}

void Msix::save(StateWriter& out) const {
    std::lock_guard lock(mutex_);
    out.put(static_cast<std::uint16_t>(entries_.size()));
    for (auto const& entry : entries_) {
        out.put(entry.address_low);
        out.put(entry.address_high);
        out.put(entry.data);
        out.put(entry.control);
        out.put_bool(entry.pending);
    }
}

void Msix::load(StateReader& in) {
    std::lock_guard lock(mutex_);
    auto const count = in.get<std::uint16_t>();
    if (count != entries_.size())
        throw in.malformed(fmt::format("{} MSI-X vectors, the function has {}", count, entries_.size()));
    for (auto& entry : entries_) {
        entry.address_low = in.get<std::uint32_t>();
        entry.address_high = in.get<std::uint32_t>();
        entry.data = in.get<std::uint32_t>();
        entry.control = in.get<std::uint32_t>();
        entry.pending = in.get_bool();
        entry.routed.reset();  // a new VM has no route yet
        if (entry.control & ~std::uint32_t{1})
            throw in.malformed("an MSI-X vector control with reserved bits");
    }
}

bool Msix::enabled() const noexcept {
    std::lock_guard lock(mutex_);
    return enabled_;
}

bool Msix::trigger(std::uint16_t vector) noexcept {
    std::lock_guard lock(mutex_);
    if (!enabled_) return false;
    if (vector >= entries_.size()) return true;
    Entry& entry = entries_[vector];
    if (!deliverable(entry)) {
        entry.pending = true;
        return true;
    }
    router_.signal(vector);
    return true;
}

// Mutex held. Every deliverable vector gets its current message routed (the guest may have
// changed it while masked; the router hears only of changes), and a pending one fires now
// (§6.8.2.9).
void Msix::deliver_pending() noexcept {
    for (std::size_t v = 0; v < entries_.size(); ++v) {
        Entry& entry = entries_[v];
        if (!deliverable(entry)) continue;
        if (entry.routed != entry.message()) {
            entry.routed = entry.message();
            router_.set_route(static_cast<std::uint16_t>(v), *entry.routed);
        }
        if (!entry.pending) continue;
        entry.pending = false;
        router_.signal(static_cast<std::uint16_t>(v));
    }
}

}  // namespace kvmlet::pci
