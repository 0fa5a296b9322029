#include "devices/virtio/queue_throttle.hpp"

#include <algorithm>
#include <utility>

#include "vmm/base/state_stream.hpp"

namespace kvmlet::virtio {

QueueThrottle::QueueThrottle(std::size_t queue, RateLimiterConfig const& config, Now now)
    : queue_(queue), limiter_(config), now_(now ? std::move(now) : Now([] { return RateClock::now(); })) {}

bool QueueThrottle::admit(std::uint64_t bytes, DeviceHost& host) noexcept {
    if (!limiter_.limited()) return true;
    auto const until = limiter_.consume(bytes, now_());
    if (!until) return true;
    waiting_ = true;
    if (!timer_pending_) {
        throttled_.add();
        arm(*until, host);
    }
    return false;
}

void QueueThrottle::arm(RateClock::time_point until, DeviceHost& host) noexcept {
    timer_pending_ = true;
    auto const delay = std::max<RateClock::duration>(until - now_(), RateClock::duration(1));
    host.after(delay, [this, &host, generation = generation_] {
        if (generation != generation_) return;  // an update came since: that timer is moot
        timer_pending_ = false;
        if (std::exchange(waiting_, false)) host.kick(queue_);
    });
}

void QueueThrottle::load(StateReader& in) {
    limiter_.load(in);
    ++generation_;
    timer_pending_ = false;
    waiting_ = false;
}

void QueueThrottle::update(RateLimiterConfig const& change, DeviceHost* host) noexcept {
    limiter_.update(change);
    ++generation_;
    timer_pending_ = false;
    if (host != nullptr && std::exchange(waiting_, false)) host->kick(queue_);
}

}  // namespace kvmlet::virtio
