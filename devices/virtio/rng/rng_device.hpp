#pragma once
// virtio-rng (virtio 1.2 §5.4): fills the guest's buffers from getrandom(2).
//
// Flood defence, always: at most `chains_per_call` requests and `bytes_per_call` bytes per call
// (then `more`), at most 64 KiB per request. Rate limit (optional, Firecracker's entropy
// rate_limiter): each request costs one op and the bytes it is given. A request is given at most
// the bandwidth bucket's size (an rng may return fewer bytes than asked), so it never overdraws;
// when the limiter refuses, the request stays popped and the queue waits for the throttle's
// timer (queue_throttle.hpp), no sleeping, no polling.
#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "devices/virtio/active_state.hpp"
#include "devices/virtio/counter.hpp"
#include "devices/virtio/queue_throttle.hpp"
#include "devices/virtio/virtio_device.hpp"

namespace kvmlet::virtio {

struct RngConfig {
    RateLimiterConfig rate_limiter{};  // no buckets: no limit beyond the per-call bounds
};

class RngDevice final : public Device {
public:
    static constexpr std::uint16_t queue_size = 256;
    // Per call at most this many requests and bytes (then `more`).
    static constexpr std::uint32_t chains_per_call = queue_size;
    static constexpr std::uint64_t bytes_per_call = 1 << 20;
    static constexpr std::uint64_t max_bytes_per_request = 64 * 1024;
    // Fills a buffer with random bytes; returns false on failure. getrandom(2) by default.
    using Source = std::function<bool(std::span<std::byte>)>;

    explicit RngDevice(RngConfig const& config, Source source = {}, QueueThrottle::Now now = {});

    DeviceType type() const noexcept override { return DeviceType::rng; }
    std::uint64_t features() const noexcept override;
    std::span<std::uint16_t const> queue_max_sizes() const noexcept override { return max_sizes_; }
    void read_config(std::uint64_t, std::span<std::byte> data) const noexcept override;
    bool activate(Activation activation) noexcept override;
    Work process_queue(std::size_t queue) noexcept override;
    void reset() noexcept override;

    RateLimiterConfig rate_limiter() const noexcept { return throttle_.config(); }
    std::uint64_t throttled() const noexcept { return throttle_.throttled(); }
    std::uint64_t bytes_served() const noexcept { return bytes_served_.value(); }
    std::vector<Metric> metrics() const override;

    // Snapshots: the rate limiter's buckets. A request held back by the limiter is given back.
    bool saveable() const noexcept override { return true; }
    void save(StateWriter& out) const override;
    void load(StateReader& in) override;
    std::vector<QueueIndices> queue_indices() const override;

private:
    std::uint64_t grant(DescriptorChain const& chain) const noexcept;
    std::uint32_t fill(DescriptorChain const& chain, std::uint64_t budget) noexcept;

    Source source_;
    std::array<std::uint16_t, 1> max_sizes_{queue_size};
    std::optional<ActiveState> active_;
    QueueThrottle throttle_;
    std::optional<DescriptorChain> held_;  // popped, refused by the rate limiter, not served
    std::vector<iovec> views_;             // scratch for one request; reserved once
    Counter bytes_served_;
    Counter requests_;
};

}  // namespace kvmlet::virtio
