#pragma once
// Firecracker-shaped metrics (PUT /metrics, the config file's "metrics"): one JSON object per
// line, written to a file (appended) or a named pipe every 60 s, on FlushMetrics and at exit.
// As in Firecracker, a counter shows what it grew by since the previous line; the line holds
// "utc_timestamp_ms", "vcpu" (VM exits to kvmlet by reason), "block" and "net" (sums) with
// "block_<drive_id>" and "net_<iface_id>" for each device, "entropy", "vsock",
// "virtio_console" where present, "boot_timeline_us" (when each boot phase was reached, µs since
// the process started), and "id" and "properties" as configured.
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vmm/api/vm_resources.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet {
class Machine;
}

namespace kvmlet::api {

class MetricsWriter {
public:
    static constexpr std::chrono::seconds period{60};

    // Opens the path (a file: created if missing, appended to; a named pipe: must have a reader).
    // `resources` names the devices. Throws ConfigError.
    MetricsWriter(MetricsSettings settings, std::string instance_id, VmResources const& resources);
    MetricsWriter(MetricsWriter const&) = delete;
    MetricsWriter& operator=(MetricsWriter const&) = delete;
    ~MetricsWriter();

    // Writes one line from `machine`'s counters now. Thread-safe. Returns what went wrong.
    std::optional<std::string> write(Machine const& machine);
    // The line write() would write, and takes its counters as the new baseline. For tests.
    Json line(Machine const& machine);
    // Writes a line every `period` from a thread of its own until stop() or destruction. The
    // machine must outlive that.
    void start_periodic(Machine const& machine);
    void stop() noexcept;

    std::uint64_t lines_written() const noexcept { return lines_; }

private:
    std::uint64_t delta(std::string const& key, std::uint64_t value);

    MetricsSettings settings_;
    std::string instance_id_;
    std::vector<std::string> drive_ids_;
    std::vector<std::string> iface_ids_;
    UniqueFd fd_;
    std::mutex mutex_;
    std::map<std::string, std::uint64_t> previous_;
    std::uint64_t lines_ = 0;

    std::mutex periodic_mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread periodic_;
};

}  // namespace kvmlet::api
