#include "devices/virtio/rng/rng_device.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>

#include "devices/virtio/chain_io.hpp"
#include "vmm/base/log.hpp"

namespace kvmlet::virtio {
namespace {

// Per request, so one huge buffer cannot keep the device busy for long (the driver asks again).
constexpr std::uint64_t max_bytes_per_request = 64 * 1024;
constexpr auto min_retry_delay = std::chrono::milliseconds(1);

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

RngDevice::RngDevice(RngConfig config, Source source, std::function<Clock::time_point()> now)
    : config_(config),
      source_(source ? std::move(source) : Source(fill_from_getrandom)),
      now_(now ? std::move(now) : [] { return Clock::now(); }) {
    views_.reserve(queue_size);
}

std::vector<Metric> RngDevice::metrics() const {
    return {{"entropy_bytes", bytes_served_.value()}, {"entropy_event_count", requests_.value()}};
}

std::uint64_t RngDevice::features() const noexcept {
    return bit(feature::ring_indirect_desc) | bit(feature::ring_event_idx);
}

void RngDevice::read_config(std::uint64_t, std::span<std::byte> data) const noexcept {
    std::fill(data.begin(), data.end(), std::byte{0});  // §5.4.4: no configuration
}

bool RngDevice::activate(Activation activation) noexcept {
    active_.emplace(std::move(activation));
    if (config_.bytes_per_second) tokens_ = static_cast<double>(*config_.bytes_per_second);
    last_refill_ = now_();
    return true;
}

void RngDevice::reset() noexcept {
    active_.reset();
    held_.reset();
}

std::uint64_t RngDevice::available_tokens() noexcept {
    if (!config_.bytes_per_second) return max_bytes_per_request;
    auto rate = static_cast<double>(*config_.bytes_per_second);
    auto now = now_();
    std::chrono::duration<double> elapsed = now - last_refill_;
    last_refill_ = now;
    tokens_ = std::min(rate, tokens_ + elapsed.count() * rate);
    return static_cast<std::uint64_t>(tokens_);
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
        std::uint64_t wanted = std::min(writable_length(*chain), max_bytes_per_request);
        std::uint64_t budget = std::min(available_tokens(), max_bytes_per_request);
        if (budget == 0 && wanted > 0) {
            held_ = std::move(chain);
            auto rate = static_cast<double>(*config_.bytes_per_second);
            auto wait = std::chrono::duration<double>(
                static_cast<double>(std::min<std::uint64_t>(wanted, 64)) / rate);
            // One timer at a time, however often the driver notifies meanwhile.
            if (!std::exchange(retry_pending_, true))
                active_->host().after(std::max<Clock::duration>(
                                          std::chrono::duration_cast<Clock::duration>(wait), min_retry_delay),
                                      [this] {
                                          retry_pending_ = false;
                                          if (active_) active_->host().kick(0);
                                      });
            work = Work::done;  // the retry comes back
            break;
        }
        std::uint32_t n = fill(*chain, budget);
        if (config_.bytes_per_second) tokens_ -= n;
        bytes_served_.add(n);
        requests_.add();
        served += n;
        q.add_used(chain->head, n);
    }
    active_->signal(0);
    return q.broken() ? Work::done : work;
}

}  // namespace kvmlet::virtio
