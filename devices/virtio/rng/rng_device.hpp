#pragma once
// virtio-rng (virtio 1.2 §5.4): fills the guest's buffers from getrandom(2), optionally limited
// to a number of bytes per second (a token bucket holding at most one second's worth). When the
// budget runs out the device leaves the remaining requests in the ring and asks its host for a
// timer that serves the queue again once tokens are back.
#include <sys/uio.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "devices/virtio/active_state.hpp"
#include "devices/virtio/counter.hpp"
#include "devices/virtio/virtio_device.hpp"

namespace kvmlet::virtio {

struct RngConfig {
    std::optional<std::uint64_t> bytes_per_second;  // nullopt: unlimited
};

class RngDevice final : public Device {
public:
    static constexpr std::uint16_t queue_size = 256;
    // Per call at most this many requests and bytes (then `more`).
    static constexpr std::uint32_t chains_per_call = queue_size;
    static constexpr std::uint64_t bytes_per_call = 1 << 20;
    using Clock = std::chrono::steady_clock;
    // Fills a buffer with random bytes; returns false on failure. getrandom(2) by default.
    using Source = std::function<bool(std::span<std::byte>)>;

    explicit RngDevice(RngConfig config, Source source = {}, std::function<Clock::time_point()> now = {});

    DeviceType type() const noexcept override { return DeviceType::rng; }
    std::uint64_t features() const noexcept override;
    std::span<std::uint16_t const> queue_max_sizes() const noexcept override { return max_sizes_; }
    void read_config(std::uint64_t, std::span<std::byte> data) const noexcept override;
    bool activate(Activation activation) noexcept override;
    Work process_queue(std::size_t queue) noexcept override;
    void reset() noexcept override;

    std::uint64_t bytes_served() const noexcept { return bytes_served_.value(); }
    std::vector<Metric> metrics() const override;

private:
    std::uint64_t available_tokens() noexcept;
    std::uint32_t fill(DescriptorChain const& chain, std::uint64_t budget) noexcept;

    RngConfig config_;
    Source source_;
    std::function<Clock::time_point()> now_;
    std::array<std::uint16_t, 1> max_sizes_{queue_size};
    std::optional<ActiveState> active_;
    std::optional<DescriptorChain> held_;  // popped, waiting for tokens
    bool retry_pending_ = false;           // a timer will serve the queue again
    std::vector<iovec> views_;             // scratch for one request; reserved once
    double tokens_ = 0;
    Clock::time_point last_refill_{};
    Counter bytes_served_;
    Counter requests_;
};

}  // namespace kvmlet::virtio
