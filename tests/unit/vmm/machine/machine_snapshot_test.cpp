#include "vmm/machine/machine_snapshot.hpp"

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
    return out.take();
}

}  // namespace

TEST_CASE("A restored machine takes its shape from the snapshot and drops the configured devices") {
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
