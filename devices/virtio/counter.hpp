#pragma once
#include <atomic>
#include <cstdint>

namespace kvmlet::virtio {

// A statistic written by one device thread and read by any (metrics, tests): a relaxed atomic,
// with no read-modify-write since there is one writer.
class Counter {
public:
    void add(std::uint64_t n = 1) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

}  // namespace kvmlet::virtio
