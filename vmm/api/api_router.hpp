#pragma once
// Firecracker's REST API (../shared/contracts/firecracker-api.yaml) as a function from request to
// response, without sockets: the HTTP server (api_server.hpp) feeds it, tests call it directly.
// It keeps the microVM's resources until InstanceStart and its state after; what needs the running
// machine goes through a MachineControl. Firecracker's rules that clients depend on: success is
// 204 with no body, or 200 with JSON for a GET; every error is 400 with {"fault_message": ...}.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "vmm/api/vm_resources.hpp"

namespace kvmlet::api {

struct ApiRequest {
    std::string method;  // "GET", "PUT", "PATCH", ...
    std::string target;  // "/drives/rootfs"
    std::string body;
};

struct ApiResponse {
    unsigned status = 204;
    std::string body;  // empty for 204

    static ApiResponse no_content() { return {}; }
    // Serialised with invalid UTF-8 replaced (U+FFFD): a message may quote the request's path,
    // which is the client's bytes, and nlohmann throws on invalid UTF-8 otherwise.
    static ApiResponse ok(Json const& json) { return {200, dump(json)}; }
    static ApiResponse fault(std::string const& message, unsigned status = 400) {
        return {status, dump(Json{{"fault_message", message}})};
    }
    static std::string dump(Json const& json) {
        return json.dump(-1, ' ', false, Json::error_handler_t::replace);
    }
};

using Reply = std::function<void(ApiResponse)>;

// What the API asks of the VMM process and its machine; the VMM implements it, tests fake it.
// Calls come from the API thread.
class MachineControl {
public:
    virtual ~MachineControl() = default;
    // PUT /logger: the process's log from now on (logger.hpp). Throws ConfigError.
    virtual void apply_logger(LoggerSettings const& settings) = 0;
    // Builds the machine from `config` (made from `resources`, which also name the devices in
    // metrics) and starts it; `done` gets nullopt on success or the error once the outcome is
    // known, called on the API thread (it changes the router's state).
    virtual void start(VmResources const& resources, MachineConfig config,
                       std::function<void(std::optional<std::string>)> done) = 0;
    // Each returns nullopt, or what went wrong. Only called after a successful start.
    virtual std::optional<std::string> pause() = 0;
    virtual std::optional<std::string> resume() = 0;
    virtual std::optional<std::string> send_ctrl_alt_del() = 0;
    virtual std::optional<std::string> flush_metrics() = 0;
    // PATCH /drives/{id} with a new path_on_host: the drive at `index` (the order of
    // VmResources::drives) is backed by `path` from now on, and the guest is told its capacity.
    virtual std::optional<std::string> replace_drive(std::size_t index, std::string const& path) = 0;
    // PATCH /drives/{id} with a rate_limiter, PATCH /network-interfaces/{id} with rx_rate_limiter
    // or tx_rate_limiter: the running device's limits change (RateLimiterConfig's PATCH
    // semantics: buckets not named stay); `index` as for replace_drive, or the order of
    // VmResources::network_interfaces.
    virtual std::optional<std::string> update_drive_rate_limiter(std::size_t index,
                                                                 virtio::RateLimiterConfig const& change) = 0;
    virtual std::optional<std::string> update_interface_rate_limiters(
        std::size_t index, virtio::RateLimiterConfig const& rx, virtio::RateLimiterConfig const& tx) = 0;
    // PUT /snapshot/create of the paused machine: its state file and memory file, with `diff`
    // only the pages dirtied since the last snapshot (docs/snapshot.md). A snapshot load is a
    // start() whose config names the files to restore.
    virtual std::optional<std::string> create_snapshot(std::string const& state_path,
                                                       std::string const& memory_path, bool diff) = 0;
};

enum class VmState { not_started, starting, running, paused };

struct InstanceIdentity {
    std::string id = "anonymous-instance";
    std::string app_name = "kvmlet";
};

class ApiRouter {
public:
    ApiRouter(InstanceIdentity identity, VmResources resources, MachineControl& machine);

    // Handles one request; calls `reply` exactly once (at once, or later for InstanceStart).
    void handle(ApiRequest const& request, Reply reply);

    // The machine was started without the API (a config file): post-boot rules from now on.
    void started_elsewhere() noexcept { state_ = VmState::running; }
    VmState state() const noexcept { return state_; }
    VmResources const& resources() const noexcept { return resources_; }
    // MMDS contents (PUT/PATCH/GET /mmds; resources().mmds_store); initially from --metadata.
    void set_mmds_data(Json const& data);

private:
    ApiResponse route(ApiRequest const& request, Reply& reply, bool& deferred);
    ApiResponse put_actions(Json const& body, Reply& reply, bool& deferred);
    ApiResponse patch_vm(Json const& body);
    ApiResponse put_snapshot_create(Json const& body);
    ApiResponse put_snapshot_load(Json const& body, Reply& reply, bool& deferred);
    ApiResponse put_drive(std::string const& id, Json const& body);
    ApiResponse patch_drive(std::string const& id, Json const& body);
    ApiResponse put_network_interface(std::string const& id, Json const& body);
    ApiResponse patch_network_interface(std::string const& id, Json const& body);
    ApiResponse put_mmds(std::string const& method, std::string const& body_text);
    ApiResponse instance_info() const;
    void pre_boot_only() const;
    void post_boot_only() const;

    InstanceIdentity identity_;
    VmResources resources_;
    MachineControl& machine_;
    VmState state_ = VmState::not_started;
    // A boot-specific resource (machine-config, boot-source, drives, ...) was configured: a
    // snapshot can no longer be loaded (Firecracker's rule).
    bool boot_resources_configured_ = false;
};

// The Firecracker version kvmlet speaks a subset of (GET /version, --version).
inline constexpr char const* firecracker_version = "1.16.0";
// Largest request body accepted (Firecracker's default http_api_max_payload_size).
inline constexpr std::size_t max_request_body = 51200;

std::string_view state_name(VmState state) noexcept;

}  // namespace kvmlet::api
