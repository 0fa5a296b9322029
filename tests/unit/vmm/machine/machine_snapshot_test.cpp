#include "vmm/machine/machine_snapshot.hpp"

#include <array>
#include <catch2/catch.hpp>

#include "vmm/base/error.hpp"
#include "vmm/base/state_stream.hpp"

namespace kvmlet {
namespace {

snapshot::StateFile with_machine_section(std::vector<std::byte> bytes) {
    snapshot::StateFile file;
    file.add("machine", std::move(bytes));
    return file;
}

std::vector<std::byte> shape(std::uint32_t cpus, std::uint64_t memory, bool acpi, std::uint8_t transport) {
    StateWriter out;
    out.put(cpus);
    out.put(memory);
    out.put_bool(acpi);
    out.put(transport);
    out.put(std::uint32_t{0});  // no disks
    out.put(std::uint32_t{0});  // no network interfaces
    out.put_bool(false);        // no virtio console
    out.put_bool(false);        // no virtio-rng
    return out.take();
}

// A section with one disk at `path` (and `count` said), a virtio console and a virtio-rng.
std::vector<std::byte> shape_with_disk(std::string const& path, std::uint8_t transport = 1,
                                       std::uint32_t count = 1) {
    StateWriter out;
    out.put(std::uint32_t{1});
    out.put(std::uint64_t{64 * MiB});
    out.put_bool(true);
    out.put(transport);
    out.put(count);
    out.put_vector(std::vector<char>(path.begin(), path.end()));
    out.put_bool(false);
    out.put_vector(std::vector<char>{});
    out.put(std::uint8_t{0});
    out.put(std::uint32_t{0});  // no network interfaces
    out.put_bool(true);
    out.put_bool(true);
    return out.take();
}

// A section with one network interface `id` on TAP `tap` with `mac`.
std::vector<std::byte> shape_with_net(std::string const& id, std::string const& tap,
                                      std::array<std::uint8_t, 6> mac) {
    StateWriter out;
    out.put(std::uint32_t{1});
    out.put(std::uint64_t{64 * MiB});
    out.put_bool(true);
    out.put(std::uint8_t{1});
    out.put(std::uint32_t{0});
    out.put(std::uint32_t{1});
    out.put_vector(std::vector<char>(id.begin(), id.end()));
    out.put_bool(true);
    out.put_vector(std::vector<char>(tap.begin(), tap.end()));
    out.put(mac);
    out.put_bool(true);
    out.put_bool(false);
    out.put_bool(false);
    return out.take();
}

MachineConfig restoring(std::vector<RestoreFiles::NetOverride> overrides) {
    MachineConfig config;
    config.restore =
        RestoreFiles{.state = "vm.snap", .memory = "vm.mem", .net_overrides = std::move(overrides)};
    return config;
}

}  // namespace

TEST_CASE(
    "A restored machine takes its shape from the snapshot and drops the configured devices it had not") {
    MachineConfig saved;
    saved.cpus = 4;
    saved.memory_bytes = 256 * MiB;
    saved.acpi = false;
    saved.transport = VirtioTransport::mmio;
    MachineConfig asked;
    asked.console = ConsoleKind::virtio;
    asked.disks.push_back(DiskConfig{.path = "disk.img"});
    asked.rng = virtio::RngConfig{};
    MachineConfig restored = restored_config(asked, with_machine_section(save_machine_shape(saved)));
    CHECK(restored.cpus == 4);
    CHECK(restored.memory_bytes == 256 * MiB);
    CHECK_FALSE(restored.acpi);
    CHECK(restored.transport == VirtioTransport::mmio);
    CHECK(restored.disks.empty());
    CHECK_FALSE(restored.rng.has_value());
    CHECK(restored.console == ConsoleKind::serial);
}

TEST_CASE("A restored machine builds the snapshot's virtio disks, console and rng, not the configured ones") {
    MachineConfig saved;
    saved.transport = VirtioTransport::mmio;
    saved.disks.push_back(DiskConfig{.path = "/images/root.img", .read_only = true, .id = "root"});
    saved.disks.push_back(DiskConfig{.path = "data.img", .cache = CacheMode::none});
    saved.console = ConsoleKind::virtio;
    saved.rng = virtio::RngConfig{.rate_limiter = {.bandwidth = virtio::BucketConfig{.size = 100}}};
    MachineConfig asked;
    asked.disks.push_back(DiskConfig{.path = "other.img"});
    MachineConfig restored = restored_config(asked, with_machine_section(save_machine_shape(saved)));
    REQUIRE(restored.disks.size() == 2);
    CHECK(restored.disks[0].path == "/images/root.img");
    CHECK(restored.disks[0].read_only);
    CHECK(restored.disks[0].id == "root");
    CHECK(restored.disks[1].path == "data.img");
    CHECK(restored.disks[1].cache == CacheMode::none);
    CHECK(restored.console == ConsoleKind::virtio);
    REQUIRE(restored.rng.has_value());
    CHECK(restored.rng->rate_limiter == virtio::RateLimiterConfig{});  // the device's section has it
}

TEST_CASE("A machine section with too many disks or a NUL in a path is refused, on either transport") {
    MachineConfig config;
    CHECK_NOTHROW(restored_config(config, with_machine_section(shape_with_disk("disk.img"))));
    CHECK(restored_config(config, with_machine_section(shape_with_disk("disk.img", 0))).transport ==
          VirtioTransport::pci);
    CHECK_THROWS_WITH(restored_config(config, with_machine_section(shape_with_disk("disk.img", 1, 17))),
                      "snapshot section machine: 17 disks");
    CHECK_THROWS_WITH(restored_config(config, with_machine_section(shape_with_disk(std::string("a\0b", 3)))),
                      Catch::Contains("NUL"));
    CHECK_THROWS_WITH(restored_config(config, with_machine_section(shape_with_disk(""))),
                      Catch::Contains("a disk without a path"));
}

TEST_CASE("A restored machine attaches the snapshot's network interfaces by TAP name with their MACs") {
    MachineConfig saved;
    saved.transport = VirtioTransport::mmio;
    saved.nets.push_back(NetInterfaceConfig{.id = "net1", .tap = "tap7", .mac = "06:00:ac:10:00:02"});
    saved.nets.push_back(
        NetInterfaceConfig{.id = "", .tap = std::nullopt, .mac = "06:00:ac:10:00:03"});  // tap=auto
    saved.nets.back().offloads = false;
    MachineConfig asked;
    asked.nets.push_back(NetInterfaceConfig{.id = "", .tap = "other", .mac = std::nullopt});
    MachineConfig restored = restored_config(asked, with_machine_section(save_machine_shape(saved)));
    REQUIRE(restored.nets.size() == 2);
    CHECK(restored.nets[0].id == "net1");
    CHECK(restored.nets[0].tap == "tap7");
    CHECK(restored.nets[0].mac == "06:00:ac:10:00:02");
    CHECK(restored.nets[0].offloads);
    CHECK(restored.nets[1].id == "eth1");  // no iface_id: its position
    CHECK_FALSE(restored.nets[1].tap.has_value());
    CHECK(restored.nets[1].mac == "06:00:ac:10:00:03");
    CHECK_FALSE(restored.nets[1].offloads);
}

TEST_CASE("network_overrides attach an interface of the snapshot to another TAP, and name only its own") {
    MachineConfig saved;
    saved.transport = VirtioTransport::mmio;
    saved.nets.push_back(NetInterfaceConfig{.id = "net1", .tap = "tap7", .mac = "06:00:ac:10:00:02"});
    auto const file = with_machine_section(save_machine_shape(saved));
    MachineConfig restored = restored_config(restoring({{"net1", "tap9"}}), file);
    REQUIRE(restored.nets.size() == 1);
    CHECK(restored.nets[0].tap == "tap9");
    CHECK(restored.nets[0].mac == "06:00:ac:10:00:02");
    CHECK_THROWS_WITH(restored_config(restoring({{"eth0", "tap9"}}), file),
                      "network_overrides: the snapshot has no network interface eth0");
}

TEST_CASE(
    "A machine section with a multicast MAC, no iface_id, or an empty or too long TAP name is refused") {
    MachineConfig config;
    std::array<std::uint8_t, 6> const unicast{6, 0, 0xac, 0x10, 0, 2};
    CHECK_NOTHROW(restored_config(config, with_machine_section(shape_with_net("eth0", "tap0", unicast))));
    CHECK_THROWS_WITH(
        restored_config(config, with_machine_section(shape_with_net("eth0", "tap0", {1, 0, 0, 0, 0, 1}))),
        Catch::Contains("cannot be an interface's"));
    CHECK_THROWS_WITH(restored_config(config, with_machine_section(shape_with_net("eth0", "tap0", {}))),
                      Catch::Contains("cannot be an interface's"));
    CHECK_THROWS_WITH(restored_config(config, with_machine_section(shape_with_net("", "tap0", unicast))),
                      Catch::Contains("without an id"));
    CHECK_THROWS_WITH(restored_config(config, with_machine_section(shape_with_net("eth0", "", unicast))),
                      Catch::Contains("empty TAP name"));
    CHECK_THROWS_WITH(restored_config(config, with_machine_section(shape_with_net(
                                                  "eth0", "a-name-too-long-for-a-tap", unicast))),
                      Catch::Contains("snapshot section machine"));
}

TEST_CASE("A machine section with no vCPUs, too many, odd RAM or an unknown transport is refused") {
    MachineConfig config;
    CHECK_THROWS_WITH(restored_config(config, with_machine_section(shape(0, 128 * MiB, true, 1))),
                      "snapshot section machine: 0 vCPUs");
    CHECK_THROWS_WITH(restored_config(config, with_machine_section(shape(65, 128 * MiB, true, 1))),
                      "snapshot section machine: 65 vCPUs");
    CHECK_THROWS_WITH(restored_config(config, with_machine_section(shape(1, 128 * MiB + 1, true, 1))),
                      Catch::Contains("bytes of RAM"));
    CHECK_THROWS_WITH(restored_config(config, with_machine_section(shape(1, 128 * MiB, true, 2))),
                      "snapshot section machine: unknown transport");
    CHECK_THROWS_WITH(restored_config(config, snapshot::StateFile{}), "snapshot: no section machine");
}

}  // namespace kvmlet
