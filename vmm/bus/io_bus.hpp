#pragma once
// IoBus: an address-range map from a PIO or MMIO space to devices. Ranges are inserted during
// machine set-up (overlaps are rejected) and only looked up while vCPUs run.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "vmm/bus/bus_device.hpp"

namespace kvmlet {

class IoBus {
public:
    explicit IoBus(std::string name) : name_(std::move(name)) {}

    // Throws Error when the range is empty, wraps, or overlaps a range already on the bus.
    void insert(std::shared_ptr<BusDevice> device, std::uint64_t start, std::uint64_t length);

    // Unclaimed reads return all-ones and unclaimed writes are dropped; both are counted.
    // Return whether a device claimed the access.
    bool read(std::uint64_t address, std::span<std::byte> data) noexcept;
    bool write(std::uint64_t address, std::span<std::byte const> data) noexcept;

    std::uint64_t unclaimed_reads() const noexcept {
        return unclaimed_reads_.load(std::memory_order_relaxed);
    }
    std::uint64_t unclaimed_writes() const noexcept {
        return unclaimed_writes_.load(std::memory_order_relaxed);
    }

private:
    struct Range {
        std::uint64_t length;
        std::shared_ptr<BusDevice> device;
    };
    // The range containing [address, address + size), if one device claims all of it.
    std::pair<std::uint64_t, Range const*> find(std::uint64_t address, std::uint64_t size) const noexcept;

    std::string name_;
    std::map<std::uint64_t, Range> ranges_;  // by start address
    std::atomic<std::uint64_t> unclaimed_reads_{0};
    std::atomic<std::uint64_t> unclaimed_writes_{0};
};

}  // namespace kvmlet
