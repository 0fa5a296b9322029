#include "vmm/api/machine_launch.hpp"

#include <poll.h>

#include <cerrno>
#include <chrono>
#include <future>
#include <memory>

#include "vmm/api/api_server.hpp"
#include "vmm/api/logger.hpp"
#include "vmm/api/metrics.hpp"
#include "vmm/base/error.hpp"
#include "vmm/event/process_signals.hpp"
#include "vmm/machine/machine.hpp"

namespace kvmlet::api {

MachineLaunch::MachineLaunch() = default;

std::optional<MachineLaunch::StartRequest> MachineLaunch::wait_for_start(ProcessSignals const& signals) {
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            if (pending_) {
                StartRequest request = std::move(*pending_);
                pending_.reset();
                Done done = std::move(request.done);
                // The outcome goes back to the API thread, where the router keeps its state.
                request.done = [this, done = std::move(done)](std::optional<std::string> error) {
                    if (server_ == nullptr) {
                        done(std::move(error));
                        return;
                    }
                    server_->post([done, error = std::move(error)] { done(error); });
                };
                return request;
            }
        }
        if (signals.stop_signal()) return std::nullopt;
        pollfd fds[2] = {{.fd = start_ready_.fd(), .events = POLLIN, .revents = 0},
                         {.fd = signals.stop_fd(), .events = POLLIN, .revents = 0}};
        if (::poll(fds, 2, -1) < 0 && errno != EINTR) throw system_error("poll");
        start_ready_.consume();
    }
}

void MachineLaunch::publish(Machine* machine, MetricsWriter* metrics) noexcept {
    std::lock_guard lock(mutex_);
    machine_ = machine;
    metrics_ = machine == nullptr ? nullptr : metrics;
}

void MachineLaunch::start(VmResources const& resources, MachineConfig config,
                          std::function<void(std::optional<std::string>)> done) {
    {
        std::lock_guard lock(mutex_);
        pending_ = StartRequest{resources, std::move(config), std::move(done)};
    }
    start_ready_.signal();
}

template <class F>
std::optional<std::string> MachineLaunch::with_machine(F&& f) {
    std::lock_guard lock(mutex_);
    if (machine_ == nullptr) return "The microVM is not running.";
    return f(*machine_);
}

std::optional<std::string> MachineLaunch::pause() {
    return with_machine([](Machine& m) -> std::optional<std::string> {
        m.pause();
        return std::nullopt;
    });
}

std::optional<std::string> MachineLaunch::resume() {
    return with_machine([](Machine& m) -> std::optional<std::string> {
        m.resume();
        return std::nullopt;
    });
}

std::optional<std::string> MachineLaunch::send_ctrl_alt_del() {
    return with_machine([](Machine& m) -> std::optional<std::string> {
        if (m.send_ctrl_alt_del()) return std::nullopt;
        return "The guest has no ACPI power button, and has not enabled its keyboard or has not read the "
               "keys "
               "sent before.";
    });
}

void MachineLaunch::apply_logger(LoggerSettings const& settings) {
    api::apply_logger(settings);
}

std::optional<std::string> MachineLaunch::flush_metrics() {
    return with_machine([this](Machine& m) -> std::optional<std::string> {
        if (metrics_ == nullptr) return "No metrics are being written.";
        return metrics_->write(m);
    });
}

std::optional<std::string> MachineLaunch::replace_drive(std::size_t index, std::string const& path) {
    return with_machine([&](Machine& m) { return m.replace_disk(index, path); });
}

std::optional<std::string> MachineLaunch::update_drive_rate_limiter(std::size_t index,
                                                                    virtio::RateLimiterConfig const& change) {
    return with_machine([&](Machine& m) { return m.update_disk_rate_limiter(index, change); });
}

std::optional<std::string> MachineLaunch::update_interface_rate_limiters(
    std::size_t index, virtio::RateLimiterConfig const& rx, virtio::RateLimiterConfig const& tx) {
    return with_machine([&](Machine& m) { return m.update_net_rate_limiters(index, rx, tx); });
}

std::optional<std::string> MachineLaunch::create_snapshot(std::string const& state_path,
                                                          std::string const& memory_path, bool diff) {
    return with_machine([&](Machine& m) { return m.create_snapshot({state_path, memory_path, diff}); });
}

void MachineLaunch::flush_replies() {
    if (server_ == nullptr) return;
    auto done = std::make_shared<std::promise<void>>();
    auto future = done->get_future();
    server_->post([done] { done->set_value(); });
    future.wait_for(std::chrono::seconds(1));
}

}  // namespace kvmlet::api
