#include "vmm/api/metrics.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vmm/base/log.hpp"
#include "vmm/base/timeline.hpp"
#include "vmm/machine/machine.hpp"
#include "vmm/security/seccomp.hpp"

namespace kvmlet::api {
namespace {

constexpr std::string_view mmds_prefix = "mmds.";  // NetDevice::metrics()

// Firecracker's names for VM exits (its "vcpu" metrics).
std::string_view exit_metric(ExitReason reason) {
    switch (reason) {
        case ExitReason::pio:
            return "exit_io";
        case ExitReason::mmio:
            return "exit_mmio";
        case ExitReason::hlt:
            return "exit_hlt";
        case ExitReason::shutdown:
            return "exit_shutdown";
        case ExitReason::system_event:
            return "exit_system_event";
        case ExitReason::internal_error:
            return "exit_internal_error";
        case ExitReason::fail_entry:
            return "exit_fail_entry";
        case ExitReason::signal:
            return "exit_signal";
        case ExitReason::other:
            return "exit_other";
    }
    return "exit_other";
}

}  // namespace

MetricsWriter::MetricsWriter(MetricsSettings settings, std::string instance_id, VmResources const& resources)
    : settings_(std::move(settings)), instance_id_(std::move(instance_id)) {
    for (auto const& d : resources.drives) drive_ids_.push_back(d.drive_id);
    for (auto const& n : resources.network_interfaces) iface_ids_.push_back(n.iface_id);
    // O_NONBLOCK: a named pipe without a reader is an error now, and a full one drops a line
    // rather than stall kvmlet.
    fd_ = UniqueFd(
        ::open(settings_.metrics_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600));
    if (fd_.get() < 0)
        throw ConfigError(
            fmt::format("metrics.metrics_path {}: {}", settings_.metrics_path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode)))
        throw ConfigError(
            fmt::format("metrics.metrics_path {}: not a file or named pipe", settings_.metrics_path));
}

MetricsWriter::~MetricsWriter() {
    stop();
}

std::uint64_t MetricsWriter::delta(std::string const& key, std::uint64_t value) {
    std::uint64_t& before = previous_[key];
    std::uint64_t grown = value >= before ? value - before : value;
    before = value;
    return grown;
}

Json MetricsWriter::line(Machine const& machine) {
    using namespace std::chrono;
    Json out = Json::object();
    out["utc_timestamp_ms"] = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    if (settings_.emit_id) out["id"] = instance_id_;
    if (!settings_.properties.empty()) out["properties"] = settings_.properties;

    Json vcpu = Json::object();
    Timeline const& timeline = process_timeline();
    for (std::size_t i = 0; i < exit_reason_count; ++i) {
        auto reason = static_cast<ExitReason>(i);
        std::string name(exit_metric(reason));
        vcpu[name] = delta("vcpu." + name, timeline.total_exits(reason));
    }
    out["vcpu"] = vcpu;

    // The boot so far: when each phase was reached, in µs of wall time since the process started
    // (not a delta: a phase is reached once).
    Json boot = Json::object();
    for (std::size_t i = 0; i < phase_count; ++i) {
        auto phase = static_cast<Phase>(i);
        if (auto at = timeline.reached(phase)) boot[std::string(name(phase))] = at->wall_us;
    }
    out["boot_timeline_us"] = boot;

    std::size_t disks = 0, nets = 0;
    for (auto const& device : machine.device_metrics()) {
        std::string section;
        std::string sum;  // Firecracker's aggregate over all devices of the kind
        switch (device.type) {
            case virtio::DeviceType::block:
                section = "block_" + (disks < drive_ids_.size() ? drive_ids_[disks] : std::to_string(disks));
                ++disks;
                sum = "block";
                break;
            case virtio::DeviceType::net:
                section = "net_" + (nets < iface_ids_.size() ? iface_ids_[nets] : std::to_string(nets));
                ++nets;
                sum = "net";
                break;
            case virtio::DeviceType::rng:
                section = "entropy";
                break;
            case virtio::DeviceType::vsock:
                section = "vsock";
                break;
            case virtio::DeviceType::console:
                section = "virtio_console";
                break;
        }
        Json values = Json::object();
        if (!sum.empty() && !out.contains(sum)) out[sum] = Json::object();
        for (auto const& metric : device.values) {
            std::string name(metric.name);
            if (name.starts_with(mmds_prefix)) {  // an interface's MMDS: one section for all of them
                std::string const key = name.substr(mmds_prefix.size());
                std::uint64_t grown = delta(section + "." + name, metric.value);
                if (!out.contains("mmds")) out["mmds"] = Json::object();
                out["mmds"][key] = out["mmds"].value(key, std::uint64_t{0}) + grown;
                continue;
            }
            std::uint64_t grown = delta(section + "." + name, metric.value);
            values[name] = grown;
            if (!sum.empty()) out[sum][name] = out[sum].value(name, std::uint64_t{0}) + grown;
        }
        out[section] = values;
    }
    return out;
}

std::optional<std::string> MetricsWriter::write(Machine const& machine) {
    std::lock_guard lock(mutex_);
    std::string text;
    try {
        text = line(machine).dump() + "\n";
    } catch (std::exception const& e) {
        return fmt::format("metrics: {}", e.what());
    }
    // One write(2): a reader of a pipe sees whole lines (up to PIPE_BUF bytes, atomically).
    ssize_t n = ::write(fd_.get(), text.data(), text.size());
    if (n != static_cast<ssize_t>(text.size())) {
        std::string why = n < 0 ? std::strerror(errno) : std::string("short write");
        return fmt::format("metrics {}: {}", settings_.metrics_path, why);
    }
    ++lines_;
    return std::nullopt;
}

void MetricsWriter::start_periodic(Machine const& machine) {
    periodic_ = std::thread([this, &machine] {
        ::pthread_setname_np(::pthread_self(), "metrics");
        security::confine(security::ThreadKind::metrics);
        std::unique_lock lock(periodic_mutex_);
        while (!wake_.wait_for(lock, period, [this] { return stopping_; })) {
            if (auto error = write(machine)) log::warn("{}", *error);
        }
    });
}

void MetricsWriter::stop() noexcept {
    {
        std::lock_guard lock(periodic_mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (periodic_.joinable()) periodic_.join();
}

}  // namespace kvmlet::api
