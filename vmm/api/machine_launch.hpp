#pragma once
// The meeting point of the API thread and the thread that runs the machine (main's): the API asks
// for a start (InstanceStart) and controls the running machine (pause, Ctrl-Alt-Del, ...); the
// main thread waits for the start, builds the Machine, publishes it here while it runs, and takes
// it back before destroying it. A call from the API thread on a machine that is being destroyed
// waits for it, or finds it gone.
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "vmm/api/api_router.hpp"
#include "vmm/base/event_fd.hpp"

namespace kvmlet {
class Machine;
class ProcessSignals;
}  // namespace kvmlet

namespace kvmlet::api {

class ApiServer;
class MetricsWriter;

class MachineLaunch final : public MachineControl {
public:
    using Done = std::function<void(std::optional<std::string>)>;
    struct StartRequest {
        VmResources resources;
        MachineConfig config;
        Done done;  // call with the outcome from any thread: it is posted to the API thread
    };

    MachineLaunch();
    // Where `done` callbacks run; without a server (no API) they run where they are called.
    void set_server(ApiServer* server) noexcept { server_ = server; }

    // Main thread: waits for a start request, or returns nullopt once a stop signal came.
    std::optional<StartRequest> wait_for_start(ProcessSignals const& signals);
    // Main thread: `machine` runs, with `metrics` if configured (nullptr: it is about to be
    // destroyed).
    void publish(Machine* machine, MetricsWriter* metrics = nullptr) noexcept;

    // MachineControl, from the API thread.
    void apply_logger(LoggerSettings const& settings) override;
    void start(VmResources const& resources, MachineConfig config,
               std::function<void(std::optional<std::string>)> done) override;
    std::optional<std::string> pause() override;
    std::optional<std::string> resume() override;
    std::optional<std::string> send_ctrl_alt_del() override;
    std::optional<std::string> flush_metrics() override;
    std::optional<std::string> replace_drive(std::size_t index, std::string const& path) override;
    std::optional<std::string> update_drive_rate_limiter(std::size_t index,
                                                         virtio::RateLimiterConfig const& change) override;
    std::optional<std::string> update_interface_rate_limiters(std::size_t index,
                                                              virtio::RateLimiterConfig const& rx,
                                                              virtio::RateLimiterConfig const& tx) override;
    std::optional<std::string> create_snapshot(std::string const& state_path, std::string const& memory_path,
                                               bool diff) override;
    // Main thread: waits (at most a second) until the API thread has run what was posted to it so
    // far, such as the answer to a failed snapshot load, before the process ends.
    void flush_replies();

private:
    template <class F>
    std::optional<std::string> with_machine(F&& f);

    ApiServer* server_ = nullptr;
    EventFd start_ready_;
    std::mutex mutex_;
    std::optional<StartRequest> pending_;
    Machine* machine_ = nullptr;
    MetricsWriter* metrics_ = nullptr;
};

}  // namespace kvmlet::api
