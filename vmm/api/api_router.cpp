#include "vmm/api/api_router.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "vmm/base/log.hpp"

namespace kvmlet::api {
namespace {

// Firecracker's messages for requests in the wrong phase.
constexpr char const* not_after_start =
    "The requested operation is not supported after starting the microVM.";
constexpr char const* not_before_start =
    "The requested operation is not supported before starting the microVM.";

// A fault in the request: becomes a 400 with this message.
struct RequestFault {
    std::string message;
};

std::vector<std::string> split_path(std::string const& target) {
    std::vector<std::string> parts;
    std::size_t start = 1;
    while (start <= target.size()) {
        std::size_t end = target.find('/', start);
        if (end == std::string::npos) end = target.size();
        parts.push_back(target.substr(start, end - start));
        start = end + 1;
    }
    // "/" gives one empty part; "/drives/" a trailing empty one: both mean the path without it.
    if (!parts.empty() && parts.back().empty()) parts.pop_back();
    return parts;
}

Json body_json(ApiRequest const& request) {
    if (request.body.empty()) throw RequestFault{fmt::format("Empty {} request.", request.method)};
    return parse_json(request.body, "request body");
}

void check_path_id(std::string const& path_id, std::string const& body_id) {
    if (path_id != body_id) throw RequestFault{"The id from the path does not match the id from the body!"};
}

}  // namespace

std::string_view state_name(VmState state) noexcept {
    switch (state) {
        case VmState::not_started:
        case VmState::starting:
            return "Not started";
        case VmState::running:
            return "Running";
        case VmState::paused:
            return "Paused";
    }
    return "Not started";
}

ApiRouter::ApiRouter(InstanceIdentity identity, VmResources resources, MachineControl& machine)
    : identity_(std::move(identity)), resources_(std::move(resources)), machine_(machine) {}

void ApiRouter::pre_boot_only() const {
    if (state_ != VmState::not_started) throw RequestFault{not_after_start};
}

void ApiRouter::post_boot_only() const {
    if (state_ != VmState::running && state_ != VmState::paused) throw RequestFault{not_before_start};
}

// The requests that configure what a snapshot load would bring instead (Firecracker's
// "boot-specific resources"); the logger and metrics may be set before a load.
static bool configures_boot_resources(ApiRequest const& request) {
    if (request.method != "PUT" && request.method != "PATCH") return false;
    auto const parts = split_path(request.target);
    if (parts.empty()) return false;
    std::string const& first = parts[0];
    return first == "machine-config" || first == "boot-source" || first == "drives" ||
           first == "network-interfaces" || first == "vsock" || first == "entropy" ||
           (first == "mmds" && parts.size() == 2);
}

void ApiRouter::handle(ApiRequest const& request, Reply reply) {
    bool deferred = false;
    ApiResponse response;
    try {
        response = route(request, reply, deferred);
        if (state_ == VmState::not_started && response.status == 204 && configures_boot_resources(request))
            boot_resources_configured_ = true;
    } catch (RequestFault const& fault) {
        response = ApiResponse::fault(fault.message);
    } catch (ConfigError const& e) {
        response = ApiResponse::fault(e.what());
    } catch (std::exception const& e) {
        log::warn("api: {} {}: {}", request.method, request.target, e.what());
        response = ApiResponse::fault(fmt::format("Internal error: {}", e.what()));
    }
    if (!deferred) reply(std::move(response));
}

ApiResponse ApiRouter::instance_info() const {
    return ApiResponse::ok(Json{{"id", identity_.id},
                                {"state", state_name(state_)},
                                {"vmm_version", firecracker_version},
                                {"app_name", identity_.app_name}});
}

ApiResponse ApiRouter::route(ApiRequest const& request, Reply& reply, bool& deferred) {
    auto const parts = split_path(request.target);
    std::string const& m = request.method;
    std::string const first = parts.empty() ? "" : parts[0];
    auto only = [&](std::size_t n) {
        if (parts.size() != n) throw RequestFault{fmt::format("Invalid request path: {}", request.target)};
    };
    auto wrong_method = [&]() -> ApiResponse {
        throw RequestFault{fmt::format("Invalid request method {} for {}", m, request.target)};
    };

    if (first.empty()) return m == "GET" ? instance_info() : wrong_method();
    if (first == "version") {
        only(1);
        return m == "GET" ? ApiResponse::ok(Json{{"firecracker_version", firecracker_version}})
                          : wrong_method();
    }
    if (first == "machine-config") {
        only(1);
        if (m == "GET") return ApiResponse::ok(to_json(resources_.machine));
        if (m != "PUT" && m != "PATCH") return wrong_method();
        Json body = body_json(request);
        pre_boot_only();
        resources_.machine = read_machine_settings(body, "machine-config", resources_.machine, m == "PATCH");
        return ApiResponse::no_content();
    }
    if (first == "vm") {
        if (parts.size() == 2 && parts[1] == "config")
            return m == "GET" ? ApiResponse::ok(to_json(resources_)) : wrong_method();
        only(1);
        return m == "PATCH" ? patch_vm(body_json(request)) : wrong_method();
    }
    if (first == "snapshot") {
        only(2);
        if (m != "PUT") return wrong_method();
        if (parts[1] == "create") return put_snapshot_create(body_json(request));
        if (parts[1] == "load") return put_snapshot_load(body_json(request), reply, deferred);
        throw RequestFault{fmt::format("Invalid request path: {}", request.target)};
    }
    if (first == "actions") {
        only(1);
        return m == "PUT" ? put_actions(body_json(request), reply, deferred) : wrong_method();
    }
    if (first == "drives" || first == "network-interfaces") {
        only(2);
        check_id(parts[1], first == "drives" ? "drive_id" : "iface_id");
        if (m != "PUT" && m != "PATCH") return wrong_method();
        Json body = body_json(request);
        if (first == "drives") return m == "PUT" ? put_drive(parts[1], body) : patch_drive(parts[1], body);
        return m == "PUT" ? put_network_interface(parts[1], body) : patch_network_interface(parts[1], body);
    }
    if (first == "mmds") {
        if (parts.size() == 2 && parts[1] == "config") {
            if (m != "PUT") return wrong_method();
            Json body = body_json(request);
            pre_boot_only();
            MmdsSettings mmds = read_mmds_config(body, "mmds-config");
            for (auto const& id : mmds.network_interfaces) {
                bool known =
                    std::any_of(resources_.network_interfaces.begin(), resources_.network_interfaces.end(),
                                [&](NetworkInterface const& n) { return n.iface_id == id; });
                if (!known) throw RequestFault{fmt::format("The network interface ID {} is invalid.", id)};
            }
            resources_.mmds = std::move(mmds);
            return ApiResponse::no_content();
        }
        only(1);
        if (m == "GET") return ApiResponse{200, resources_.mmds_store->json_text()};
        if (m == "PUT" || m == "PATCH") return put_mmds(m, request.body);
        return wrong_method();
    }
    // The remaining objects are pre-boot PUTs of one settings object each.
    if (first == "logger") {
        only(1);
        if (m != "PUT") return wrong_method();
        Json body = body_json(request);
        pre_boot_only();
        LoggerSettings logger = read_logger(body, "logger");
        machine_.apply_logger(logger);
        resources_.logger = std::move(logger);
        return ApiResponse::no_content();
    }
    struct Section {
        std::string_view name;
        void (*apply)(VmResources&, Json const&);
    };
    static constexpr Section sections[] = {
        {"boot-source",
         [](VmResources& r, Json const& j) { r.boot_source = read_boot_source(j, "boot-source"); }},
        {"vsock", [](VmResources& r, Json const& j) { r.vsock = read_vsock(j, "vsock"); }},
        {"metrics", [](VmResources& r, Json const& j) { r.metrics = read_metrics(j, "metrics"); }},
        {"entropy", [](VmResources& r, Json const& j) { r.entropy = read_entropy(j, "entropy"); }},
    };
    for (auto const& section : sections) {
        if (first != section.name) continue;
        only(1);
        if (m != "PUT") return wrong_method();
        Json body = body_json(request);
        pre_boot_only();
        section.apply(resources_, body);
        return ApiResponse::no_content();
    }
    throw RequestFault{fmt::format("Invalid request path: {}", request.target)};
}

ApiResponse ApiRouter::put_actions(Json const& body, Reply& reply, bool& deferred) {
    JsonObject in(body, "");
    auto action = in.optional_choice("action_type", {"FlushMetrics", "InstanceStart", "SendCtrlAltDel"});
    in.finish();
    if (!action) throw RequestFault{"action_type: missing field"};
    if (*action == "InstanceStart") {
        pre_boot_only();
        MachineConfig config = to_machine_config(resources_);
        state_ = VmState::starting;
        deferred = true;
        machine_.start(resources_, std::move(config),
                       [this, reply = std::move(reply)](std::optional<std::string> error) {
                           state_ = error ? VmState::not_started : VmState::running;
                           reply(error ? ApiResponse::fault(*error) : ApiResponse::no_content());
                       });
        return {};
    }
    std::optional<std::string> error;
    if (*action == "SendCtrlAltDel") {
        post_boot_only();
        error = machine_.send_ctrl_alt_del();
    } else {
        post_boot_only();  // as Firecracker: FlushMetrics is not supported before start
        if (!resources_.metrics)
            throw RequestFault{"Cannot flush metrics: no metrics are configured (PUT /metrics)."};
        error = machine_.flush_metrics();
    }
    return error ? ApiResponse::fault(*error) : ApiResponse::no_content();
}

ApiResponse ApiRouter::patch_vm(Json const& body) {
    JsonObject in(body, "");
    auto wanted = in.optional_choice("state", {"Paused", "Resumed"});
    in.finish();
    if (!wanted) throw RequestFault{"state: missing field"};
    post_boot_only();
    bool pause = *wanted == "Paused";
    std::optional<std::string> error = pause ? machine_.pause() : machine_.resume();
    if (error) return ApiResponse::fault(*error);
    state_ = pause ? VmState::paused : VmState::running;
    return ApiResponse::no_content();
}

ApiResponse ApiRouter::put_snapshot_create(Json const& body) {
    JsonObject in(body, "");
    auto type = in.optional_choice("snapshot_type", {"Full", "Diff"});
    std::string state_path = in.string("snapshot_path");
    std::string memory_path = in.string("mem_file_path");
    in.finish();
    post_boot_only();
    bool const diff = type == "Diff";
    if (diff && !resources_.machine.track_dirty_pages)  // Firecracker's words, before its paused check
        throw RequestFault{"Diff snapshots are not allowed on uVMs with dirty page tracking disabled."};
    if (state_ != VmState::paused) throw RequestFault{"Cannot create a snapshot: the microVM is not paused."};
    auto error = machine_.create_snapshot(state_path, memory_path, diff);
    return error ? ApiResponse::fault(*error) : ApiResponse::no_content();
}

// Firecracker's network_overrides: [{"iface_id": ..., "host_dev_name": ...}], each interface once.
// That each names an interface of the snapshot is checked when the snapshot is read.
namespace {
std::vector<RestoreFiles::NetOverride> read_net_overrides(Json const* overrides) {
    std::vector<RestoreFiles::NetOverride> out;
    if (overrides == nullptr) return out;
    if (overrides->size() > MachineConfig::max_nets)
        throw RequestFault{fmt::format("network_overrides: at most {} interfaces", MachineConfig::max_nets)};
    for (std::size_t i = 0; i < overrides->size(); ++i) {
        std::string const path = fmt::format("network_overrides[{}]", i);
        if (!(*overrides)[i].is_object()) throw RequestFault{path + ": expected an object"};
        JsonObject in((*overrides)[i], path);
        RestoreFiles::NetOverride o{in.string("iface_id"), in.string("host_dev_name")};
        in.finish();
        if (o.host_dev_name.empty() || o.host_dev_name.size() >= 16)
            throw RequestFault{path + ".host_dev_name: a TAP name of 1 to 15 characters"};
        for (auto const& other : out)
            if (other.iface_id == o.iface_id)
                throw RequestFault{fmt::format("{}: iface_id {} given twice", path, o.iface_id)};
        out.push_back(std::move(o));
    }
    return out;
}
}  // namespace

// Firecracker's load: the memory file as mem_backend {backend_type: File, backend_path} or the
// older mem_file_path (one of the two); the machine is built from the snapshot by start(), and a
// failed load ends the process (MachineLaunch).
ApiResponse ApiRouter::put_snapshot_load(Json const& body, Reply& reply, bool& deferred) {
    JsonObject in(body, "");
    std::string state_path = in.string("snapshot_path");
    auto legacy_memory = in.optional_string("mem_file_path");
    std::optional<std::string> memory_path;
    bool uffd = false;
    if (Json const* backend = in.optional_object("mem_backend")) {
        JsonObject b(*backend, "mem_backend");
        auto kind = b.optional_choice("backend_type", {"File", "Uffd"});
        auto path = b.string("backend_path");
        b.finish();
        if (!kind) throw RequestFault{"mem_backend.backend_type: missing field"};
        uffd = *kind == "Uffd";  // backend_path: the page-fault handler's socket
        memory_path = std::move(path);
    }
    auto dirty = in.optional_bool("track_dirty_pages");
    auto diff = in.optional_bool("enable_diff_snapshots");
    auto resume = in.optional_bool("resume_vm");
    Json const* overrides = in.optional_array("network_overrides");
    Json const* vsock_override = in.optional_object("vsock_override");
    auto clock_realtime = in.optional_bool("clock_realtime");
    auto huge_pages = in.optional_choice("huge_pages", {"Snapshot", "None", "Transparent", "2M"});
    in.finish();
    if (vsock_override != nullptr)
        throw RequestFault{"vsock_override is not supported yet (no snapshot has a vsock device)."};
    // Snapshots hold no huge pages yet: the snapshot's setting and None are the host's default.
    if (huge_pages == "Transparent" || huge_pages == "2M")
        throw RequestFault{fmt::format("huge_pages {} is not supported yet.", *huge_pages)};
    if (memory_path && legacy_memory)
        throw RequestFault{"Only one of mem_backend and mem_file_path may be given."};
    if (!memory_path && !legacy_memory) throw RequestFault{"Missing mem_backend (or mem_file_path)."};
    auto net_overrides = read_net_overrides(overrides);
    pre_boot_only();
    if (boot_resources_configured_)
        throw RequestFault{
            "Loading a microVM snapshot not allowed after configuring boot-specific resources."};
    // The snapshot sets the machine's shape; kvmlet's own settings (console, host-compat, the
    // stop grace, the timeline) are the process's.
    MachineConfig config;
    config.host_compat = resources_.kvmlet.host_compat;
    config.console = resources_.kvmlet.console;
    config.stop_grace = std::chrono::milliseconds(resources_.kvmlet.stop_grace_ms);
    if (resources_.kvmlet.timeline) config.timeline = *resources_.kvmlet.timeline;
    // track_dirty_pages, or the older enable_diff_snapshots: Diffs of the restored microVM hold
    // what changed since the load.
    config.track_dirty_pages = dirty.value_or(false) || diff.value_or(false);
    resources_.machine.track_dirty_pages = config.track_dirty_pages;  // as Firecracker's machine config says
    bool const running = resume.value_or(false);
    config.restore = RestoreFiles{state_path, memory_path ? *memory_path : *legacy_memory, running,
                                  clock_realtime.value_or(false), std::move(net_overrides)};
    config.restore->uffd = uffd;
    state_ = VmState::starting;
    deferred = true;
    machine_.start(resources_, std::move(config),
                   [this, running, reply = std::move(reply)](std::optional<std::string> error) {
                       state_ = error ? VmState::not_started : running ? VmState::running : VmState::paused;
                       reply(error ? ApiResponse::fault(*error) : ApiResponse::no_content());
                   });
    return {};
}

ApiResponse ApiRouter::put_drive(std::string const& id, Json const& body) {
    Drive drive = read_drive(body, "drive");
    check_path_id(id, drive.drive_id);
    pre_boot_only();
    resources_.put_drive(std::move(drive));
    return ApiResponse::no_content();
}

ApiResponse ApiRouter::patch_drive(std::string const& id, Json const& body) {
    JsonObject in(body, "drive");
    std::string body_id = in.string("drive_id");
    auto path = in.optional_string("path_on_host");
    Json const* limiter_json = in.optional_object("rate_limiter");
    std::optional<RateLimiter> limiter;
    if (limiter_json != nullptr) limiter = read_rate_limiter(*limiter_json, in.member_path("rate_limiter"));
    in.finish();
    check_path_id(id, body_id);
    post_boot_only();
    auto it = std::find_if(resources_.drives.begin(), resources_.drives.end(),
                           [&](Drive const& d) { return d.drive_id == id; });
    if (it == resources_.drives.end()) throw RequestFault{fmt::format("No drive with id {}.", id)};
    auto const index = static_cast<std::size_t>(it - resources_.drives.begin());
    if (path) {
        if (path->empty()) throw RequestFault{"drive.path_on_host: empty path"};
        if (auto error = machine_.replace_drive(index, *path)) return ApiResponse::fault(*error);
        it->path_on_host = *path;
    }
    if (limiter) {
        if (auto error = machine_.update_drive_rate_limiter(index, device_limits(*limiter)))
            return ApiResponse::fault(*error);
        merge_rate_limiter(it->rate_limiter, *limiter);
    }
    return ApiResponse::no_content();
}

ApiResponse ApiRouter::put_network_interface(std::string const& id, Json const& body) {
    NetworkInterface iface = read_network_interface(body, "network-interface");
    check_path_id(id, iface.iface_id);
    pre_boot_only();
    resources_.put_network_interface(std::move(iface));
    return ApiResponse::no_content();
}

ApiResponse ApiRouter::patch_network_interface(std::string const& id, Json const& body) {
    JsonObject in(body, "network-interface");
    std::string body_id = in.string("iface_id");
    RateLimiter rx, tx;
    if (Json const* json = in.optional_object("rx_rate_limiter"))
        rx = read_rate_limiter(*json, in.member_path("rx_rate_limiter"));
    if (Json const* json = in.optional_object("tx_rate_limiter"))
        tx = read_rate_limiter(*json, in.member_path("tx_rate_limiter"));
    in.finish();
    check_path_id(id, body_id);
    post_boot_only();
    auto& ifaces = resources_.network_interfaces;
    auto it = std::find_if(ifaces.begin(), ifaces.end(),
                           [&](NetworkInterface const& n) { return n.iface_id == id; });
    if (it == ifaces.end()) throw RequestFault{fmt::format("No network interface with id {}.", id)};
    auto const index = static_cast<std::size_t>(it - ifaces.begin());
    if (auto error = machine_.update_interface_rate_limiters(index, device_limits(rx), device_limits(tx)))
        return ApiResponse::fault(*error);
    if (rx.bandwidth || rx.ops) merge_rate_limiter(it->rx_rate_limiter, rx);
    if (tx.bandwidth || tx.ops) merge_rate_limiter(it->tx_rate_limiter, tx);
    return ApiResponse::no_content();
}

ApiResponse ApiRouter::put_mmds(std::string const& method, std::string const& body_text) {
    if (body_text.empty()) throw RequestFault{fmt::format("Empty {} request.", method)};
    Json body = parse_json(body_text, "request body");
    auto& store = *resources_.mmds_store;
    std::optional<std::string> error;
    if (method == "PUT") {
        if (!body.is_object()) throw RequestFault{"The MMDS contents must be a JSON object."};
        error = store.replace(body_text);
    } else {
        if (!body.is_object()) throw RequestFault{"The MMDS patch must be a JSON object."};
        error = store.merge_patch(body_text);  // RFC 7396, as Firecracker does
    }
    if (error) throw RequestFault{fmt::format("The MMDS contents: {}.", *error)};
    return ApiResponse::no_content();
}

void ApiRouter::set_mmds_data(Json const& data) {
    if (auto error = resources_.mmds_store->replace(ApiResponse::dump(data)))
        throw ConfigError(fmt::format("MMDS contents: {}", *error));
}

}  // namespace kvmlet::api
