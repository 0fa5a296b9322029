#pragma once
// A rate limiter (rate_limiter.hpp) on one queue of a device. The device asks admit() before it
// serves a request; when the limiter refuses, the device stops taking requests from that queue
// (it keeps the one it popped) and the throttle asks the device host for one timer that serves
// the queue again (DeviceHost::kick) once the tokens are back: no sleeping thread, no polling.
// However often the driver notifies meanwhile, there is one timer at a time; a refused request
// retried early is simply refused again.
//
// Device code: every call, the timer's included, runs with the device lock held (device_host.hpp).
#include <cstddef>
#include <cstdint>
#include <functional>

#include "devices/virtio/counter.hpp"
#include "devices/virtio/device_host.hpp"
#include "devices/virtio/rate_limiter.hpp"

namespace kvmlet::virtio {

class QueueThrottle {
public:
    using Now = std::function<RateClock::time_point()>;

    // `now` is the clock (steady_clock by default; tests pass their own).
    QueueThrottle(std::size_t queue, RateLimiterConfig const& config, Now now = {});
    QueueThrottle(QueueThrottle const&) = delete;
    QueueThrottle& operator=(QueueThrottle const&) = delete;

    // Whether a request moving `bytes` may go now (its tokens are then taken). When not, the
    // queue waits: a timer on `host` kicks it when the request can pass.
    bool admit(std::uint64_t bytes, DeviceHost& host) noexcept;
    // Applies a change (RateLimiterConfig's PATCH semantics). A queue that was waiting is served
    // again at once, under the new limits, through `host` when there is one (an active device).
    void update(RateLimiterConfig const& change, DeviceHost* host) noexcept;
    // The device was reset: nothing waits any more (a pending timer finds nothing to do).
    void reset() noexcept { waiting_ = false; }

    RateLimiterConfig config() const noexcept { return limiter_.config(); }
    // A snapshot's bytes: the limiter's buckets (RateLimiter::save). A loaded throttle waits for
    // nothing: the device gave back the request it held, and the restore serves the queue.
    void save(StateWriter& out) const { limiter_.save(out); }
    void load(StateReader& in);
    // How often a request was refused and its queue stopped to wait for a timer.
    std::uint64_t throttled() const noexcept { return throttled_.value(); }

private:
    void arm(RateClock::time_point until, DeviceHost& host) noexcept;

    std::size_t queue_;
    RateLimiter limiter_;
    Now now_;
    bool waiting_ = false;          // a refused request waits for a timer (or an update)
    std::uint64_t generation_ = 0;  // of the timer that counts; an update makes older ones moot
    bool timer_pending_ = false;
    Counter throttled_;
};

}  // namespace kvmlet::virtio
