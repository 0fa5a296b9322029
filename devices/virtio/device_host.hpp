#pragma once
// What a virtio device asks of the VMM that runs it: wake-ups on its executor. A device gets its
// host at activation (Activation) and registers its own fds and timers there, so the VMM needs to
// know no device by kind (STYLE.md §9, "a device owns its wake-ups"; rate limiters and vsock use
// the same).
//
// Every callback runs on the device's executor with the device lock held (transport.hpp), so
// device code stays single-threaded. A callback may find nothing to do (the device was reset in
// between): that must be harmless. The calls themselves may come from any thread, with the
// device lock held, and never block.
#include <chrono>
#include <cstddef>
#include <functional>

namespace kvmlet::virtio {

class DeviceHost {
public:
    using Callback = std::function<void()>;
    enum class Readiness { readable, writable };

    virtual ~DeviceHost() = default;
    // Calls `ready` once `fd` is readable (or writable); one-shot: ask again for the next time.
    // The fd must stay open while the device lives.
    virtual void watch(int fd, Readiness readiness, Callback ready) noexcept = 0;
    // Calls `due` once, after `delay`.
    virtual void after(std::chrono::nanoseconds delay, Callback due) noexcept = 0;
    // Calls `work` soon, after whatever is ready now.
    virtual void post(Callback work) noexcept = 0;
    // Serves `queue` as if the driver had notified it (through process_queue and its bound).
    virtual void kick(std::size_t queue) noexcept = 0;
};

}  // namespace kvmlet::virtio
