#include "vmm/api/api_router.hpp"

#include <catch2/catch.hpp>

using namespace kvmlet;
using namespace kvmlet::api;

namespace {

// Records what the router asks of the machine; start() succeeds or fails as told.
class FakeMachine final : public MachineControl {
public:
    std::optional<std::string> start_error;
    std::optional<MachineConfig> started;
    int pauses = 0, resumes = 0, ctrl_alt_dels = 0;
    std::optional<LoggerSettings> logger;

    void apply_logger(LoggerSettings const& settings) override { logger = settings; }

    void start(VmResources const&, MachineConfig config,
               std::function<void(std::optional<std::string>)> done) override {
        if (!start_error) started = std::move(config);
        done(start_error);
    }
    std::optional<std::string> pause() override { return ++pauses, std::nullopt; }
    std::optional<std::string> resume() override { return ++resumes, std::nullopt; }
    std::optional<std::string> send_ctrl_alt_del() override { return ++ctrl_alt_dels, std::nullopt; }
    std::optional<std::string> flush_metrics() override { return std::nullopt; }
    std::optional<std::string> replace_drive(std::size_t, std::string const&) override { return "no"; }
    std::optional<std::string> create_snapshot(std::string const& state, std::string const& memory,
                                               bool diff) override {
        snapshots.push_back({state, memory});
        diffs.push_back(diff);
        return snapshot_error;
    }
    std::vector<std::pair<std::string, std::string>> snapshots;
    std::vector<bool> diffs;
    std::optional<std::string> snapshot_error;
    std::optional<std::string> update_drive_rate_limiter(std::size_t index,
                                                         virtio::RateLimiterConfig const& change) override {
        drive_limits.push_back({index, change});
        return std::nullopt;
    }
    std::optional<std::string> update_interface_rate_limiters(std::size_t index,
                                                              virtio::RateLimiterConfig const& rx,
                                                              virtio::RateLimiterConfig const& tx) override {
        interface_limits.push_back({index, rx, tx});
        return std::nullopt;
    }
    struct DriveLimits {
        std::size_t index;
        virtio::RateLimiterConfig change;
    };
    struct InterfaceLimits {
        std::size_t index;
        virtio::RateLimiterConfig rx, tx;
    };
    std::vector<DriveLimits> drive_limits;
    std::vector<InterfaceLimits> interface_limits;
};

struct Fixture {
    FakeMachine machine;
    ApiRouter router{{.id = "vm1"}, {}, machine};

    ApiResponse call(std::string method, std::string target, std::string body = "") {
        std::optional<ApiResponse> out;
        router.handle({std::move(method), std::move(target), std::move(body)},
                      [&](ApiResponse r) { out = r; });
        REQUIRE(out.has_value());
        return *out;
    }
    std::string fault(ApiResponse const& r) {
        return Json::parse(r.body).at("fault_message").get<std::string>();
    }
    void boot() {
        REQUIRE(call("PUT", "/boot-source", R"({"kernel_image_path": "vmlinux"})").status == 204);
        REQUIRE(call("PUT", "/actions", R"({"action_type": "InstanceStart"})").status == 204);
    }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "success is 204 with no body, a GET 200 with JSON", "[api]") {
    ApiResponse put = call("PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 256})");
    CHECK(put.status == 204);
    CHECK(put.body.empty());
    ApiResponse get = call("GET", "/machine-config");
    CHECK(get.status == 200);
    CHECK(Json::parse(get.body)["vcpu_count"] == 2);
    CHECK(Json::parse(call("GET", "/").body) == Json{{"id", "vm1"},
                                                     {"state", "Not started"},
                                                     {"vmm_version", firecracker_version},
                                                     {"app_name", "kvmlet"}});
    CHECK(Json::parse(call("GET", "/version").body)["firecracker_version"] == firecracker_version);
}

TEST_CASE_METHOD(Fixture, "errors are 400 with a fault_message", "[api]") {
    auto bad = [&](std::string method, std::string target, std::string body) {
        ApiResponse r = call(method, target, body);
        CHECK(r.status == 400);
        return fault(r);
    };
    CHECK(bad("PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 256, "x": 1})") ==
          "machine-config.x: unknown field");
    CHECK(bad("PUT", "/machine-config", R"({"vcpu_count": 2})") ==
          "machine-config.mem_size_mib: missing field");
    CHECK(bad("PUT", "/drives/a", R"({"drive_id": "b", "path_on_host": "x", "is_root_device": false})") ==
          "The id from the path does not match the id from the body!");
    CHECK(bad("PUT", "/drives/a.b", R"({"drive_id": "a.b", "path_on_host": "x", "is_root_device": false})")
              .starts_with("drive_id: \"a.b\" is not a valid id"));
    CHECK(bad("PUT", "/boot-source", "") == "Empty PUT request.");
    CHECK(bad("PUT", "/boot-source", "{") == "request body: not valid JSON (byte 2)");
    CHECK(bad("GET", "/nowhere", "") == "Invalid request path: /nowhere");
    CHECK(bad("DELETE", "/drives/a", "") == "Invalid request method DELETE for /drives/a");
    CHECK(bad("PUT", "/drives", "{}") == "Invalid request path: /drives");
    CHECK(bad("PUT", "/actions", R"({"action_type": "Reboot"})")
              .starts_with("action_type: \"Reboot\" is not one of"));
    CHECK(bad("PUT", "/actions", R"({"action_type": "InstanceStart"})") ==
          "cannot start the microVM without a boot source (kernel_image_path)");
    CHECK(bad("PUT", "/balloon", "{}") == "Invalid request path: /balloon");
    // A path that is not UTF-8 is quoted with the bad bytes replaced, never a thrown exception
    // (found by fuzz_api_request: it ended kvmlet).
    CHECK(bad("GET", "/\x8e\xff", "") == "Invalid request path: /\xef\xbf\xbd\xef\xbf\xbd");
    CHECK(bad("PUT", "/machine-config", R"({"vcpu_count": 1e400, "mem_size_mib": 1})")
              .starts_with("request body: "));
}

TEST_CASE_METHOD(Fixture, "post-boot requests before the start, and pre-boot ones after it, are refused",
                 "[api]") {
    CHECK(fault(call("PATCH", "/vm", R"({"state": "Paused"})")) ==
          "The requested operation is not supported before starting the microVM.");
    CHECK(fault(call("PUT", "/actions", R"({"action_type": "SendCtrlAltDel"})")) ==
          "The requested operation is not supported before starting the microVM.");
    boot();
    CHECK(machine.started->kernel == "vmlinux");
    CHECK(Json::parse(call("GET", "/").body)["state"] == "Running");
    for (auto [method, target, body] :
         std::initializer_list<std::tuple<char const*, char const*, char const*>>{
             {"PUT", "/boot-source", R"({"kernel_image_path": "x"})"},
             {"PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 64})"},
             {"PATCH", "/machine-config", R"({"vcpu_count": 1})"},
             {"PUT", "/drives/a", R"({"drive_id": "a", "path_on_host": "x", "is_root_device": false})"},
             {"PUT", "/network-interfaces/e", R"({"iface_id": "e", "host_dev_name": "t0"})"},
             {"PUT", "/vsock", R"({"guest_cid": 3, "uds_path": "v"})"},
             {"PUT", "/actions", R"({"action_type": "InstanceStart"})"}}) {
        ApiResponse r = call(method, target, body);
        INFO(method << " " << target);
        CHECK(r.status == 400);
        CHECK(fault(r) == "The requested operation is not supported after starting the microVM.");
    }
}

TEST_CASE_METHOD(Fixture, "pause and resume reach the machine and show in GET /", "[api]") {
    boot();
    CHECK(call("PATCH", "/vm", R"({"state": "Paused"})").status == 204);
    CHECK(Json::parse(call("GET", "/").body)["state"] == "Paused");
    CHECK(call("PATCH", "/vm", R"({"state": "Resumed"})").status == 204);
    CHECK(Json::parse(call("GET", "/").body)["state"] == "Running");
    CHECK(machine.pauses == 1);
    CHECK(machine.resumes == 1);
    CHECK(call("PUT", "/actions", R"({"action_type": "SendCtrlAltDel"})").status == 204);
    CHECK(machine.ctrl_alt_dels == 1);
    CHECK(call("PATCH", "/vm", R"({"state": "Stopped"})").status == 400);
}

TEST_CASE_METHOD(Fixture, "a start that fails leaves the microVM not started and configurable", "[api]") {
    machine.start_error = "kernel vmlinux: No such file or directory";
    REQUIRE(call("PUT", "/boot-source", R"({"kernel_image_path": "vmlinux"})").status == 204);
    ApiResponse r = call("PUT", "/actions", R"({"action_type": "InstanceStart"})");
    CHECK(r.status == 400);
    CHECK(fault(r) == "kernel vmlinux: No such file or directory");
    CHECK(Json::parse(call("GET", "/").body)["state"] == "Not started");
    CHECK(call("PUT", "/boot-source", R"({"kernel_image_path": "other"})").status == 204);
}

TEST_CASE_METHOD(Fixture, "drives and interfaces are put by id and listed in GET /vm/config", "[api]") {
    CHECK(call("PUT", "/drives/data",
               R"({"drive_id": "data", "path_on_host": "d.img", "is_root_device": false})")
              .status == 204);
    CHECK(call("PUT", "/drives/root",
               R"({"drive_id": "root", "path_on_host": "r.img", "is_root_device": true})")
              .status == 204);
    // A second PUT with the same id updates the drive in place.
    CHECK(call("PUT", "/drives/data",
               R"({"drive_id": "data", "path_on_host": "d2.img", "is_root_device": false})")
              .status == 204);
    CHECK(
        call("PUT", "/network-interfaces/eth0", R"({"iface_id": "eth0", "host_dev_name": "tap0"})").status ==
        204);
    Json config = Json::parse(call("GET", "/vm/config").body);
    REQUIRE(config["drives"].size() == 2);
    CHECK(config["drives"][0]["drive_id"] == "root");
    CHECK(config["drives"][1]["path_on_host"] == "d2.img");
    CHECK(config["network-interfaces"][0]["host_dev_name"] == "tap0");
}

TEST_CASE_METHOD(Fixture, "PUT /logger applies the logger at once, before the start only", "[api]") {
    CHECK(call("PUT", "/logger", R"({"level": "debug", "log_path": "kvmlet.log"})").status == 204);
    REQUIRE(machine.logger.has_value());
    CHECK(machine.logger->level == "Debug");  // Firecracker's levels are case-insensitive
    CHECK(machine.logger->log_path == "kvmlet.log");
    CHECK(Json::parse(call("GET", "/vm/config").body)["logger"]["level"] == "Debug");
    CHECK(call("PUT", "/logger", R"({"level": "Loud"})").status == 400);
    boot();
    CHECK(call("PUT", "/logger", R"({"level": "Info"})").status == 400);
}

TEST_CASE_METHOD(Fixture, "MMDS contents are put, patched (RFC 7396) and read back", "[api]") {
    CHECK(call("PUT", "/mmds", R"({"latest": {"meta-data": {"a": "1", "b": "2"}}})").status == 204);
    CHECK(call("PATCH", "/mmds", R"({"latest": {"meta-data": {"b": null, "c": "3"}}})").status == 204);
    CHECK(Json::parse(call("GET", "/mmds").body) ==
          Json::parse(R"({"latest": {"meta-data": {"a": "1", "c": "3"}}})"));
    CHECK(call("PUT", "/mmds", "[1]").status == 400);
    CHECK(fault(call("PUT", "/mmds/config", R"({"network_interfaces": ["eth0"]})")) ==
          "The network interface ID eth0 is invalid.");
}

TEST_CASE_METHOD(Fixture, "PATCH of a drive's or an interface's rate limiters reaches the running device",
                 "[api]") {
    using virtio::BucketConfig;
    REQUIRE(
        call("PUT", "/drives/root", R"({"drive_id": "root", "path_on_host": "r", "is_root_device": true})")
            .status == 204);
    REQUIRE(call("PUT", "/drives/data", R"({"drive_id": "data", "path_on_host": "d", "is_root_device": false,
                                            "rate_limiter": {"ops": {"size": 100, "refill_time": 1000}}})")
                .status == 204);
    REQUIRE(
        call("PUT", "/network-interfaces/eth0", R"({"iface_id": "eth0", "host_dev_name": "tap0"})").status ==
        204);
    boot();
    REQUIRE(machine.started->disks.size() == 2);
    CHECK(machine.started->disks[1].rate_limiter.ops ==
          BucketConfig{100, 0, std::chrono::milliseconds(1000)});
    CHECK_FALSE(machine.started->disks[0].rate_limiter.ops);

    CHECK(call("PATCH", "/drives/data", R"({"drive_id": "data", "rate_limiter":
                {"bandwidth": {"size": 1048576, "one_time_burst": 10, "refill_time": 100}}})")
              .status == 204);
    REQUIRE(machine.drive_limits.size() == 1);
    CHECK(machine.drive_limits[0].index == 1);
    CHECK(machine.drive_limits[0].change.bandwidth ==
          BucketConfig{1048576, 10, std::chrono::milliseconds(100)});
    CHECK_FALSE(machine.drive_limits[0].change.ops);  // kept as it is
    Json limiter = Json::parse(call("GET", "/vm/config").body)["drives"][1]["rate_limiter"];
    CHECK(limiter["ops"]["size"] == 100);
    CHECK(limiter["bandwidth"]["size"] == 1048576);

    CHECK(call("PATCH", "/network-interfaces/eth0",
               R"({"iface_id": "eth0", "tx_rate_limiter": {"ops": {"size": 0, "refill_time": 0}}})")
              .status == 204);
    REQUIRE(machine.interface_limits.size() == 1);
    CHECK(machine.interface_limits[0].index == 0);
    CHECK(machine.interface_limits[0].tx.ops == BucketConfig{});  // size 0: that limit goes
    CHECK(machine.interface_limits[0].rx == virtio::RateLimiterConfig{});
    CHECK_FALSE(
        Json::parse(call("GET", "/vm/config").body)["network-interfaces"][0].contains("tx_rate_limiter"));
}

TEST_CASE_METHOD(Fixture, "a bad rate limiter in a PATCH is a 400 and changes nothing", "[api]") {
    REQUIRE(
        call("PUT", "/drives/data", R"({"drive_id": "data", "path_on_host": "d", "is_root_device": false})")
            .status == 204);
    REQUIRE(
        call("PUT", "/network-interfaces/eth0", R"({"iface_id": "eth0", "host_dev_name": "tap0"})").status ==
        204);
    boot();
    auto bad = [&](std::string target, std::string body) {
        ApiResponse r = call("PATCH", target, body);
        CHECK(r.status == 400);
        return fault(r);
    };
    CHECK(bad("/drives/data",
              R"({"drive_id": "data", "rate_limiter": {"bandwidth": {"size": -1, "refill_time": 1}}})")
              .starts_with("drive.rate_limiter.bandwidth.size: "));
    CHECK(bad("/drives/data", R"({"drive_id": "data", "rate_limiter": {"ops": {"size": 1}}})") ==
          "drive.rate_limiter.ops.refill_time: missing field");
    CHECK(bad("/drives/data", R"({"drive_id": "data", "rate_limiter": {"iops": {}}})") ==
          "drive.rate_limiter.iops: unknown field");
    CHECK(bad("/drives/nope", R"({"drive_id": "nope", "rate_limiter": {}})") == "No drive with id nope.");
    CHECK(bad("/network-interfaces/eth0", R"({"iface_id": "eth0", "rx_rate_limiter": 3})")
              .starts_with("network-interface.rx_rate_limiter: "));
    CHECK(bad("/network-interfaces/eth9", R"({"iface_id": "eth9"})") == "No network interface with id eth9.");
    CHECK(machine.drive_limits.empty());
    CHECK(machine.interface_limits.empty());
}

namespace {

ApiResponse call(ApiRouter& router, std::string method, std::string target, std::string body = {}) {
    ApiResponse out;
    router.handle(ApiRequest{std::move(method), std::move(target), std::move(body)},
                  [&](ApiResponse r) { out = std::move(r); });
    return out;
}

std::string fault_of(ApiResponse const& r) {
    return Json::parse(r.body).at("fault_message").get<std::string>();
}

}  // namespace

TEST_CASE("PUT /snapshot/create only while Paused, Full or Diff, and the machine's error is a 400") {
    FakeMachine machine;
    ApiRouter router({}, {}, machine);
    std::string const body = R"({"snapshot_type":"Full","snapshot_path":"vm.snap","mem_file_path":"vm.mem"})";
    CHECK(fault_of(call(router, "PUT", "/snapshot/create", body)) ==
          "The requested operation is not supported before starting the microVM.");
    call(router, "PUT", "/boot-source", R"({"kernel_image_path":"k"})");
    call(router, "PUT", "/machine-config", R"({"vcpu_count":1,"mem_size_mib":128,"track_dirty_pages":true})");
    REQUIRE(call(router, "PUT", "/actions", R"({"action_type":"InstanceStart"})").status == 204);
    CHECK(fault_of(call(router, "PUT", "/snapshot/create", body)) ==
          "Cannot create a snapshot: the microVM is not paused.");
    REQUIRE(call(router, "PATCH", "/vm", R"({"state":"Paused"})").status == 204);
    CHECK(call(router, "PUT", "/snapshot/create", body).status == 204);
    REQUIRE(machine.snapshots.size() == 1);
    CHECK(machine.snapshots[0] == std::pair<std::string, std::string>{"vm.snap", "vm.mem"});
    CHECK(call(router, "PUT", "/snapshot/create",
               R"({"snapshot_type":"Diff","snapshot_path":"a","mem_file_path":"b"})")
              .status == 204);
    std::string const default_type = R"({"snapshot_path":"c","mem_file_path":"d"})";
    CHECK(call(router, "PUT", "/snapshot/create", default_type).status == 204);
    CHECK(machine.diffs == std::vector<bool>{false, true, false});  // Full is the default
    CHECK(call(router, "PUT", "/snapshot/create",
               R"({"snapshot_type":"Incremental","snapshot_path":"a","mem_file_path":"b"})")
              .status == 400);
    CHECK(call(router, "PUT", "/snapshot/create", R"({"snapshot_path":"a"})").status == 400);
    machine.snapshot_error = "disk full";
    ApiResponse failed = call(router, "PUT", "/snapshot/create", body);
    CHECK(failed.status == 400);
    CHECK(fault_of(failed) == "disk full");
    CHECK(call(router, "GET", "/snapshot/create").status == 400);

    // Without dirty page tracking a Diff is refused first, running or paused.
    FakeMachine untracked;
    ApiRouter plain({}, {}, untracked);
    call(plain, "PUT", "/boot-source", R"({"kernel_image_path":"k"})");
    REQUIRE(call(plain, "PUT", "/actions", R"({"action_type":"InstanceStart"})").status == 204);
    std::string const diff = R"({"snapshot_type":"Diff","snapshot_path":"a","mem_file_path":"b"})";
    CHECK(fault_of(call(plain, "PUT", "/snapshot/create", diff)) ==
          "Diff snapshots are not allowed on uVMs with dirty page tracking disabled.");
    REQUIRE(call(plain, "PATCH", "/vm", R"({"state":"Paused"})").status == 204);
    CHECK(call(plain, "PUT", "/snapshot/create", diff).status == 400);
    CHECK(untracked.snapshots.empty());
}

TEST_CASE("PUT /snapshot/load starts a restore with the memory file of either form") {
    FakeMachine machine;
    ApiRouter router({}, {}, machine);
    ApiResponse r =
        call(router, "PUT", "/snapshot/load",
             R"({"snapshot_path":"vm.snap","mem_backend":{"backend_type":"File","backend_path":"vm.mem"}})");
    CHECK(r.status == 204);
    CHECK(r.body.empty());
    REQUIRE(machine.started.has_value());
    REQUIRE(machine.started->restore.has_value());
    CHECK(machine.started->restore->state == "vm.snap");
    CHECK(machine.started->restore->memory == "vm.mem");
    CHECK_FALSE(machine.started->restore->resume);
    CHECK_FALSE(machine.started->track_dirty_pages);
    CHECK(router.state() == VmState::paused);
    CHECK(fault_of(call(router, "PUT", "/snapshot/load", R"({"snapshot_path":"a","mem_file_path":"b"})")) ==
          "The requested operation is not supported after starting the microVM.");

    FakeMachine legacy;
    ApiRouter second({}, {}, legacy);
    CHECK(
        call(
            second, "PUT", "/snapshot/load",
            R"({"snapshot_path":"a","mem_file_path":"b","resume_vm":true,"clock_realtime":true,"huge_pages":"Snapshot"})")
            .status == 204);
    REQUIRE(legacy.started.has_value());
    CHECK(legacy.started->restore->resume);
    CHECK(legacy.started->restore->clock_realtime);
    CHECK_FALSE(machine.started->restore->clock_realtime);
    CHECK(second.state() == VmState::running);

    // The Uffd backend: backend_path is the page-fault handler's socket.
    FakeMachine handled;
    ApiRouter fourth({}, {}, handled);
    CHECK(call(fourth, "PUT", "/snapshot/load",
               R"({"snapshot_path":"a","mem_backend":{"backend_type":"Uffd","backend_path":"h.sock"}})")
              .status == 204);
    REQUIRE(handled.started.has_value());
    CHECK(handled.started->restore->uffd);
    CHECK(handled.started->restore->memory == "h.sock");
    CHECK_FALSE(machine.started->restore->uffd);

    // Dirty page tracking for the restored microVM's Diffs, by either name.
    for (char const* field : {"track_dirty_pages", "enable_diff_snapshots"}) {
        FakeMachine tracked;
        ApiRouter third({}, {}, tracked);
        CHECK(call(third, "PUT", "/snapshot/load",
                   std::string(R"({"snapshot_path":"a","mem_file_path":"b",")") + field + R"(":true})")
                  .status == 204);
        REQUIRE(tracked.started.has_value());
        CHECK(tracked.started->track_dirty_pages);
        CHECK(third.resources().machine.track_dirty_pages);
    }
}

TEST_CASE("PUT /snapshot/load is refused after boot-specific resources, and for what is not supported") {
    FakeMachine machine;
    ApiRouter router({}, {}, machine);
    CHECK(fault_of(call(router, "PUT", "/snapshot/load", R"({"snapshot_path":"a"})")) ==
          "Missing mem_backend (or mem_file_path).");
    CHECK(
        call(
            router, "PUT", "/snapshot/load",
            R"({"snapshot_path":"a","mem_file_path":"b","mem_backend":{"backend_type":"File","backend_path":"b"}})")
            .status == 400);
    CHECK(call(router, "PUT", "/snapshot/load",
               R"({"snapshot_path":"a","mem_backend":{"backend_type":"Shm","backend_path":"b"}})")
              .status == 400);
    CHECK(fault_of(call(router, "PUT", "/snapshot/load",
                        R"({"snapshot_path":"a","mem_file_path":"b","huge_pages":"2M"})")) ==
          "huge_pages 2M is not supported yet.");
    CHECK(call(router, "PUT", "/snapshot/load",
               R"({"snapshot_path":"a","mem_file_path":"b","vsock_override":{"uds_path":"v.sock"}})")
              .status == 400);
    REQUIRE(call(router, "PUT", "/machine-config", R"({"vcpu_count":2,"mem_size_mib":128})").status == 204);
    CHECK(fault_of(call(router, "PUT", "/snapshot/load", R"({"snapshot_path":"a","mem_file_path":"b"})")) ==
          "Loading a microVM snapshot not allowed after configuring boot-specific resources.");
    CHECK_FALSE(machine.started.has_value());
}
