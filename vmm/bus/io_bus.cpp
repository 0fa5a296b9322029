#include "vmm/bus/io_bus.hpp"

#include <algorithm>
#include <chrono>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"

namespace kvmlet {

void IoBus::insert(std::shared_ptr<BusDevice> device, std::uint64_t start, std::uint64_t length) {
    if (length == 0 || length - 1 > UINT64_MAX - start)
        throw Error(fmt::format("{} bus: range {:#x}+{:#x} is empty or wraps", name_, start, length));
    std::uint64_t last = start + (length - 1);
    auto next = ranges_.lower_bound(start);
    if (next != ranges_.end() && next->first <= last)
        throw Error(
            fmt::format("{} bus: range {:#x}-{:#x} overlaps one at {:#x}", name_, start, last, next->first));
    if (next != ranges_.begin()) {
        auto prev = std::prev(next);
        if (prev->first + (prev->second.length - 1) >= start)
            throw Error(fmt::format("{} bus: range {:#x}-{:#x} overlaps one at {:#x}", name_, start, last,
                                    prev->first));
    }
    ranges_.emplace(start, Range{length, std::move(device)});
}

std::pair<std::uint64_t, IoBus::Range const*> IoBus::find(std::uint64_t address,
                                                          std::uint64_t size) const noexcept {
    auto it = ranges_.upper_bound(address);
    if (it == ranges_.begin()) return {0, nullptr};
    --it;
    std::uint64_t offset = address - it->first;
    Range const& r = it->second;
    if (offset >= r.length || size > r.length - offset) return {0, nullptr};
    return {offset, &r};
}

bool IoBus::read(std::uint64_t address, std::span<std::byte> data) noexcept {
    auto [offset, range] = find(address, data.size());
    if (range) {
        range->device->read(IoAccess{address, offset}, data);
        return true;
    }
    std::fill(data.begin(), data.end(), std::byte{0xff});
    unclaimed_reads_.fetch_add(1, std::memory_order_relaxed);
    static log::RateLimit limit(10, std::chrono::seconds(1));
    if (log::enabled(log::Level::debug) && limit.allow())
        log::debug("{} bus: unclaimed read of {} bytes at {:#x}", name_, data.size(), address);
    return false;
}

bool IoBus::write(std::uint64_t address, std::span<std::byte const> data) noexcept {
    auto [offset, range] = find(address, data.size());
    if (range) {
        range->device->write(IoAccess{address, offset}, data);
        return true;
    }
    unclaimed_writes_.fetch_add(1, std::memory_order_relaxed);
    static log::RateLimit limit(10, std::chrono::seconds(1));
    if (log::enabled(log::Level::debug) && limit.allow())
        log::debug("{} bus: unclaimed write of {} bytes at {:#x}", name_, data.size(), address);
    return false;
}

}  // namespace kvmlet
