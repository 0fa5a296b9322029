#include "devices/virtio/rng/rng_device.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>

#include "devices/virtio/chain_io.hpp"
#include "vmm/base/log.hpp"

namespace kvmlet::virtio {
namespace {

bool fill_from_getrandom(std::span<std::byte> out) {
    while (!out.empty()) {
        ssize_t n = ::getrandom(out.data(), out.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        out = out.subspan(static_cast<std::size_t>(n));
    }
    return true;
}

std::uint64_t writable_length(DescriptorChain const& chain) {
    std::uint64_t total = 0;
    for (auto const& d : chain.descriptors)
        if (d.device_writable) total += d.len;
    return total;
}

log::RateLimit source_failure_log{1, std::chrono::seconds(10)};

}  // namespace

RngDevice::RngDevice(RngConfig const& config, Source source, QueueThrottle::Now now)
    : source_(source ? std::move(source) : Source(fill_from_getrandom)),
      throttle_(0, config.rate_limiter, std::move(now)) {
    views_.reserve(queue_size);
}

std::vector<Metric> RngDevice::metrics() const {
    return {{"entropy_bytes", bytes_served_.value()},
            {"entropy_event_count", requests_.value()},
            {"entropy_rate_limiter_throttled", throttle_.throttled()}};
}

std::uint64_t RngDevice::features() const noexcept {
    return bit(feature::ring_indirect_desc) | bit(feature::ring_event_idx);
}

void RngDevice::read_config(std::uint64_t, std::span<std::byte> data) const noexcept {
    std::fill(data.begin(), data.end(), std::byte{0});  // §5.4.4: no configuration
}

bool RngDevice::activate(Activation activation) noexcept {
    active_.emplace(std::move(activation));
    return true;
}

void RngDevice::reset() noexcept {
    active_.reset();
    held_.reset();
    throttle_.reset();
}

void RngDevice::save(StateWriter& out) const {
    throttle_.save(out);
}

void RngDevice::load(StateReader& in) {
    throttle_.load(in);
}

// The request the limiter held back was taken from the ring but nothing was written into it: a
// restore takes it again.
std::vector<QueueIndices> RngDevice::queue_indices() const {
    if (!active_) return {};
    auto indices = active_->indices();
    if (held_) --indices[0].next_avail;
    return indices;
}

// What a request is given: what it can hold, up to the per-request bound and the bandwidth
// bucket's size (so a limited request never waits for more than a full bucket).
std::uint64_t RngDevice::grant(DescriptorChain const& chain) const noexcept {
    std::uint64_t bytes = std::min(writable_length(chain), max_bytes_per_request);
    if (auto const bandwidth = throttle_.config().bandwidth) bytes = std::min(bytes, bandwidth->size);
    return bytes;
}

std::uint32_t RngDevice::fill(DescriptorChain const& chain, std::uint64_t budget) noexcept {
    views_.clear();
    // A piece outside RAM ends the views: the buffers before it are filled, and said so in the
    // used length.
    (void)view_buffers(active_->memory(), chain, Direction::writable, 0, budget, views_);
    std::uint64_t written = 0;
    for (iovec const& v : views_) {
        if (!source_(std::span(static_cast<std::byte*>(v.iov_base), v.iov_len))) {
            if (source_failure_log.allow()) log::warn("virtio-rng: the random source failed");
            break;
        }
        written += v.iov_len;
    }
    return static_cast<std::uint32_t>(written);
}

Work RngDevice::process_queue(std::size_t) noexcept {
    if (!active_) return Work::done;
    SplitQueue& q = active_->queue(0);
    Work work = Work::more;
    std::uint64_t served = 0;
    for (std::uint32_t chains = 0; chains < chains_per_call && served < bytes_per_call; ++chains) {
        auto chain = held_ ? std::exchange(held_, std::nullopt) : q.pop();
        if (!chain) {
            work = Work::done;
            break;
        }
        std::uint64_t const bytes = grant(*chain);
        if (!throttle_.admit(bytes, active_->host())) {
            held_ = std::move(chain);
            work = Work::done;  // the throttle's timer serves the queue again
            break;
        }
        std::uint32_t const n = fill(*chain, bytes);
        bytes_served_.add(n);
        requests_.add();
        served += n;
        q.add_used(chain->head, n);
    }
    active_->signal(0);
    return q.broken() ? Work::done : work;
}

}  // namespace kvmlet::virtio
