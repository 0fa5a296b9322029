#pragma once
// A DeviceHost (devices/virtio/device_host.hpp) that records what a device asks for; the test
// runs the callbacks itself, when it wants them to happen.
#include <chrono>
#include <cstddef>
#include <vector>

#include "devices/virtio/device_host.hpp"

namespace kvmlet::test {

struct RecordingDeviceHost final : virtio::DeviceHost {
    struct Watch {
        int fd;
        Readiness readiness;
        Callback ready;
    };
    struct Timer {
        std::chrono::nanoseconds delay;
        Callback due;
    };

    void watch(int fd, Readiness r, Callback ready) noexcept override {
        (r == Readiness::readable ? readable : writable) += 1;
        watches.push_back({fd, r, std::move(ready)});
    }
    void after(std::chrono::nanoseconds delay, Callback due) noexcept override {
        timers.push_back({delay, std::move(due)});
    }
    void post(Callback work) noexcept override { posted.push_back(std::move(work)); }
    void kick(std::size_t queue) noexcept override { kicks.push_back(queue); }

    int readable = 0;  // watches asked for, by kind
    int writable = 0;
    std::vector<Watch> watches;
    std::vector<Timer> timers;
    std::vector<Callback> posted;
    std::vector<std::size_t> kicks;
};

}  // namespace kvmlet::test
