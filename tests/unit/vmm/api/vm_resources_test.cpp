#include "vmm/api/vm_resources.hpp"

#include <catch2/catch.hpp>

using namespace kvmlet;
using namespace kvmlet::api;

namespace {

VmResources parse(std::string const& text) {
    return read_vm_resources(parse_json(text, "test"));
}

std::string error_of(std::string const& text) {
    try {
        parse(text);
    } catch (ConfigError const& e) {
        return e.what();
    }
    return "no error";
}

}  // namespace

TEST_CASE("a Firecracker config file becomes the machine it describes", "[api]") {
    VmResources r = parse(R"({
        "boot-source": {"kernel_image_path": "vmlinux", "initrd_path": "initrd", "boot_args": "console=ttyS0"},
        "machine-config": {"vcpu_count": 2, "mem_size_mib": 256, "smt": false},
        "drives": [
            {"drive_id": "data", "path_on_host": "data.img", "is_root_device": false, "is_read_only": true},
            {"drive_id": "rootfs", "path_on_host": "root.img", "is_root_device": true, "is_read_only": false}
        ],
        "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:02"}],
        "entropy": {},
        "vsock": {"guest_cid": 7, "uds_path": "/tmp/v.sock"},
        "kvmlet": {"transport": "pci", "console": "serial"}
    })");
    MachineConfig c = to_machine_config(r);
    CHECK(c.kernel == "vmlinux");
    CHECK(c.initrd == std::filesystem::path("initrd"));
    CHECK(c.cpus == 2);
    CHECK(c.memory_bytes == 256 * MiB);
    REQUIRE(c.disks.size() == 2);
    // The root device comes first: it is /dev/vda, and the command line says so.
    CHECK(c.disks[0].path == "root.img");
    CHECK_FALSE(c.disks[0].read_only);
    CHECK(c.disks[1].read_only);
    CHECK(c.disks[1].id == "data");
    CHECK(c.cmdline == "console=ttyS0 root=/dev/vda rw");
    REQUIRE(c.nets.size() == 1);
    CHECK(c.nets[0].tap == "tap0");
    CHECK(c.nets[0].mac == "06:00:ac:10:00:02");
    CHECK(c.rng.has_value());
    CHECK(c.transport == VirtioTransport::pci);
    REQUIRE(c.vsock.has_value());
    CHECK(c.vsock->guest_cid == 7);
    CHECK(c.vsock->uds_path == "/tmp/v.sock");
}

TEST_CASE("without boot_args the machine gets kvmlet's default command line and Firecracker's MMIO",
          "[api]") {
    MachineConfig c = to_machine_config(parse(R"({"boot-source": {"kernel_image_path": "k"}})"));
    CHECK(c.cmdline == MachineConfig::default_cmdline);
    CHECK(c.transport == VirtioTransport::mmio);
    CHECK(c.cpus == 1);
    CHECK(c.memory_bytes == 128 * MiB);
    // A stop signal first asks the guest to shut down, as Firecracker's clients expect.
    CHECK(c.stop_grace == std::chrono::milliseconds(3000));
    CHECK(to_machine_config(
              parse(R"({"boot-source": {"kernel_image_path": "k"}, "kvmlet": {"stop_grace_ms": 0}})"))
              .stop_grace == std::chrono::milliseconds(0));
}

TEST_CASE("a read-only root device by PARTUUID is named so on the command line", "[api]") {
    MachineConfig c = to_machine_config(parse(R"({"boot-source": {"kernel_image_path": "k", "boot_args": "x"},
        "drives": [{"drive_id": "r", "path_on_host": "r.img", "is_root_device": true, "is_read_only": true,
                    "partuuid": "0eaa91a0-01"}]})"));
    CHECK(c.cmdline == "x root=PARTUUID=0eaa91a0-01 ro");
}

TEST_CASE("config file errors name the field and its path", "[api]") {
    CHECK(error_of(R"({"boot-source": {"kernel_image_path": "k", "kernel_args": "x"}})") ==
          "boot-source.kernel_args: unknown field");
    CHECK(error_of(R"({"bogus": 1})") == "bogus: unknown field");
    CHECK(error_of(R"({"drives": [{"drive_id": "a", "is_root_device": false}]})") ==
          "drives[0].path_on_host: missing field");
    CHECK(error_of(R"({"drives": [{"drive_id": "a", "path_on_host": "x"}]})") ==
          "drives[0].is_root_device: missing field");
    CHECK(error_of(R"({"machine-config": {"vcpu_count": 0, "mem_size_mib": 1}})") ==
          "machine-config.vcpu_count: 0 is out of range (1 to 32)");
    CHECK(error_of(R"({"machine-config": {"vcpu_count": "2", "mem_size_mib": 1}})") ==
          "machine-config.vcpu_count: expected an integer from 1 to 32");
    CHECK(error_of(R"({"machine-config": {"vcpu_count": 3, "mem_size_mib": 64, "smt": true}})") ==
          "machine-config: with smt the vcpu_count must be 1 or even, not 3");
    CHECK(error_of(R"({"drives": [{"drive_id": "a-b", "path_on_host": "x", "is_root_device": false}]})")
              .starts_with("drives[0].drive_id: \"a-b\" is not a valid id"));
    CHECK(
        error_of(
            R"({"drives": [{"drive_id": "a", "path_on_host": "x", "is_root_device": false, "cache_type": "None"}]})") ==
        "drives[0].cache_type: \"None\" is not one of \"Unsafe\" or \"Writeback\"");
    CHECK(error_of(R"({"network-interfaces": [{"iface_id": "e", "host_dev_name": "t", "guest_mac": "zz"}]})")
              .starts_with("network-interfaces[0].guest_mac: \"zz\" is not a MAC address"));
    CHECK(error_of(R"({"balloon": {}})") == "balloon: not supported by kvmlet");
    CHECK(error_of(R"([1])") == "expected a JSON object");
    CHECK(error_of(R"({"drives": {}})") == "drives: expected an array");
    CHECK(error_of(R"({"mmds-config": {"network_interfaces": ["eth9"]}})") ==
          "mmds-config.network_interfaces: no interface eth9");
    CHECK(error_of(R"({"machine-config": {"vcpu_count": 1, "mem_size_mib": 64, "cpu_template": "T2"}})") ==
          "machine-config.cpu_template: \"T2\" is not supported by kvmlet (only \"None\")");
    CHECK(error_of("{\"a\":") == "test: not valid JSON (byte 6)");
    // Found by fuzz_config_file: a number no integer or double holds is a ConfigError too.
    CHECK(error_of(R"({"a": 10000000000e0000000003296802724})").starts_with("test: "));
}

TEST_CASE("two root devices, or the same id twice, are refused", "[api]") {
    CHECK(error_of(R"({"drives": [{"drive_id": "a", "path_on_host": "x", "is_root_device": true},
                                  {"drive_id": "b", "path_on_host": "y", "is_root_device": true}]})") ==
          "drive b: a root block device already exists (a)");
    CHECK(error_of(R"({"drives": [{"drive_id": "a", "path_on_host": "x", "is_root_device": false},
                                  {"drive_id": "a", "path_on_host": "y", "is_root_device": false}]})") ==
          "drives[1]: drive_id a given twice");
    CHECK(error_of(R"({"network-interfaces": [{"iface_id": "a", "host_dev_name": "t0"},
                                              {"iface_id": "b", "host_dev_name": "t0"}]})") ==
          "network interface b: host_dev_name t0 is already used by a");
}

TEST_CASE("a machine without a boot source cannot start", "[api]") {
    CHECK_THROWS_WITH(to_machine_config(VmResources{}),
                      "cannot start the microVM without a boot source (kernel_image_path)");
}

TEST_CASE("GET /vm/config gives back what was configured, in the same schema", "[api]") {
    std::string text = R"({"boot-source": {"kernel_image_path": "k", "boot_args": "a"},
        "machine-config": {"vcpu_count": 2, "mem_size_mib": 64},
        "drives": [{"drive_id": "r", "path_on_host": "r.img", "is_root_device": true}],
        "network-interfaces": [{"iface_id": "e", "host_dev_name": "t0"}],
        "vsock": {"guest_cid": 3, "uds_path": "v.sock"}, "entropy": {}})";
    Json out = to_json(parse(text));
    // What GET /vm/config returns reads back as a config file: the same resources again.
    Json again = to_json(read_vm_resources(out));
    CHECK(out == again);
    CHECK(out["machine-config"]["vcpu_count"] == 2);
    CHECK(out["drives"][0]["drive_id"] == "r");
    CHECK(out["vsock"]["uds_path"] == "v.sock");
}

TEST_CASE("PATCH /machine-config changes only the fields given, and PUT resets the rest", "[api]") {
    MachineSettings base =
        read_machine_settings(Json{{"vcpu_count", 4}, {"mem_size_mib", 512}, {"smt", true}}, "m", {}, false);
    MachineSettings patched = read_machine_settings(Json{{"mem_size_mib", 256}}, "m", base, true);
    CHECK(patched.vcpu_count == 4);
    CHECK(patched.smt);
    CHECK(patched.mem_size_mib == 256);
    CHECK_THROWS_WITH(read_machine_settings(Json{{"mem_size_mib", 256}}, "m", base, false),
                      "m.vcpu_count: missing field");
}

TEST_CASE("the interfaces named in mmds-config serve MMDS from the resources' store", "[api]") {
    VmResources r = parse(R"({
        "boot-source": {"kernel_image_path": "vmlinux"},
        "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0"},
                               {"iface_id": "eth1", "host_dev_name": "tap1"}],
        "mmds-config": {"version": "V2", "network_interfaces": ["eth1"], "ipv4_address": "169.254.170.2",
                        "imds_compat": true}})");
    VmResources copy = r;  // as the API router holds its own
    REQUIRE_FALSE(copy.mmds_store->replace(R"({"a": "b"})"));
    MachineConfig c = to_machine_config(r);
    REQUIRE(c.nets.size() == 2);
    CHECK_FALSE(c.nets[0].mmds);
    REQUIRE(c.nets[1].mmds);
    auto const& m = *c.nets[1].mmds;
    CHECK(m.version == virtio::net::mmds::Version::v2);
    CHECK(m.ipv4_address == std::array<std::uint8_t, 4>{169, 254, 170, 2});
    CHECK(m.imds_compat);
    CHECK(m.tokens);
    REQUIRE(m.store == r.mmds_store);
    CHECK(m.store->json_text() == R"({"a":"b"})");
}

TEST_CASE("a config file's rate limiters reach the drives, interfaces and entropy device", "[api]") {
    MachineConfig c = to_machine_config(parse(R"({
        "boot-source": {"kernel_image_path": "k"},
        "drives": [{"drive_id": "root", "path_on_host": "r", "is_root_device": true,
                    "rate_limiter": {"bandwidth": {"size": 52428800, "refill_time": 1000, "one_time_burst": 7},
                                     "ops": {"size": 0, "refill_time": 1000}}}],
        "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0",
                                "rx_rate_limiter": {"ops": {"size": 100, "refill_time": 10}},
                                "tx_rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 1000}}}],
        "entropy": {"rate_limiter": {"bandwidth": {"size": 4096, "refill_time": 100}, "ops": {"size": 5, "refill_time": 1000}}}
    })"));
    using std::chrono::milliseconds;
    using virtio::BucketConfig;
    REQUIRE(c.disks.size() == 1);
    CHECK(c.disks[0].rate_limiter.bandwidth == BucketConfig{52428800, 7, milliseconds(1000)});
    CHECK(c.disks[0].rate_limiter.ops == BucketConfig{0, 0, milliseconds(1000)});  // size 0: no limit
    CHECK(virtio::RateLimiter(c.disks[0].rate_limiter).config().ops == std::nullopt);
    REQUIRE(c.nets.size() == 1);
    CHECK(c.nets[0].rx_rate_limiter.ops == BucketConfig{100, 0, milliseconds(10)});
    CHECK_FALSE(c.nets[0].rx_rate_limiter.bandwidth);
    CHECK(c.nets[0].tx_rate_limiter.bandwidth == BucketConfig{1000, 0, milliseconds(1000)});
    REQUIRE(c.rng);
    CHECK(c.rng->rate_limiter.bandwidth == BucketConfig{4096, 0, milliseconds(100)});
    CHECK(c.rng->rate_limiter.ops == BucketConfig{5, 0, milliseconds(1000)});
    CHECK(error_of(R"({"drives": [{"drive_id": "r", "path_on_host": "r", "is_root_device": true,
                                   "rate_limiter": {"bandwidth": {"size": 1}}}]})") ==
          "drives[0].rate_limiter.bandwidth.refill_time: missing field");
}
