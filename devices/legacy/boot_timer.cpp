#include "devices/legacy/boot_timer.hpp"

#include <algorithm>
#include <chrono>

#include "vmm/base/log.hpp"

namespace kvmlet {
namespace {

constexpr std::uint64_t us_per_ms = 1000;

}  // namespace

void BootTimer::read(IoAccess const&, std::span<std::byte> data) noexcept {
    std::fill(data.begin(), data.end(), std::byte{0});
}

void BootTimer::write(IoAccess const& access, std::span<std::byte const> data) noexcept {
    if (access.offset != 0 || data.size() != 1 || std::to_integer<std::uint8_t>(data[0]) != boot_complete)
        return;
    ProcessTimes now = clock_();
    bool first = false;
    {
        std::lock_guard lock(mutex_);
        first = !first_;
        if (first) first_ = now;
        ++count_;
    }
    if (first && on_first_) on_first_(now);
    // A guest could write the magic value in a loop; the host's stderr must not pay for it.
    static log::RateLimit limit(10, std::chrono::seconds(1));
    if (limit.allow())
        log::info("Guest-boot-time = {:>6} us {} ms, {:>6} CPU us {} CPU ms", now.wall_us,
                  now.wall_us / us_per_ms, now.cpu_us, now.cpu_us / us_per_ms);
}

std::optional<ProcessTimes> BootTimer::first() const noexcept {
    std::lock_guard lock(mutex_);
    return first_;
}

std::uint64_t BootTimer::count() const noexcept {
    std::lock_guard lock(mutex_);
    return count_;
}

void BootTimer::save(StateWriter& out) const {
    std::lock_guard lock(mutex_);
    out.put(count_);
}

void BootTimer::load(StateReader& in) {
    auto count = in.get<std::uint64_t>();
    in.finish();
    std::lock_guard lock(mutex_);
    count_ = count;
}

}  // namespace kvmlet
