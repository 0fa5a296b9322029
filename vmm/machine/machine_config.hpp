#pragma once
// Everything needed to build a machine, filled from the command line (vmm/cli) or, later, a
// config file or the control API. Plain values: validated by whoever fills it.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "devices/virtio/block/disk.hpp"
#include "devices/virtio/net/mmds/mmds_config.hpp"
#include "devices/virtio/rate_limiter.hpp"
#include "devices/virtio/rng/rng_device.hpp"
#include "devices/virtio/vsock/vsock_config.hpp"
#include "vmm/base/guest_address.hpp"
#include "vmm/vcpu/cpu_template.hpp"
#include "vmm/vcpu/host_compat_mode.hpp"

namespace kvmlet {

enum class RebootAction { exit, restart };
// How the boot vCPU enters the kernel: automatic picks PVH when an ELF kernel has the PVH note.
enum class BootProtocol { automatic, linux64, pvh };
// Which device stdin and stdout are wired to: the 16550 on COM1 (ttyS0), virtio-console port 0
// (hvc0; COM1 stays and its output still reaches stdout), or nothing at all.
enum class ConsoleKind { serial, virtio, none };
// How virtio devices attach: virtio-pci (stock kernels) or virtio-mmio (minimal kernels).
enum class VirtioTransport { pci, mmio };

// One virtio-net interface on a TAP: an existing interface by name, or one kvmlet creates (and
// the kernel removes when kvmlet exits). The MAC is checked when the machine is built (status 1).
struct NetInterfaceConfig {
    std::string id{};                // Firecracker's iface_id; empty: eth0, eth1, ... by position
    std::optional<std::string> tap;  // nullopt: tap=auto
    std::optional<std::string> mac;  // nullopt: a random locally administered address
    bool offloads = true;            // checksum and segmentation offloads
    // MMDS answered on this interface (Firecracker's mmds-config names it); its store and token
    // authority are the microVM's, shared with the API and the other MMDS interfaces.
    std::optional<virtio::net::mmds::MmdsConfig> mmds{};
    // Rate limits on what the guest receives and sends (none by default).
    virtio::RateLimiterConfig rx_rate_limiter{};
    virtio::RateLimiterConfig tx_rate_limiter{};
};

// A snapshot to restore instead of booting (kvmlet run --restore, PUT /snapshot/load): the state
// file and the guest memory file (docs/snapshot.md).
struct RestoreFiles {
    std::filesystem::path state;
    std::filesystem::path memory;
    bool resume = true;  // false: the restored machine starts paused (PUT /snapshot/load resume_vm)
    // The KVM clock advanced by the wall-clock time since the snapshot (KVM_CLOCK_REALTIME;
    // PUT /snapshot/load clock_realtime); false: it goes on from where it was saved.
    bool clock_realtime = false;
    // PUT /snapshot/load network_overrides: the snapshot's interface `iface_id` attached to the TAP
    // `host_dev_name` instead of the one it was saved with.
    struct NetOverride {
        std::string iface_id;
        std::string host_dev_name;
    };
    std::vector<NetOverride> net_overrides{};
    // `memory` is the Unix socket of a page-fault handler, not a memory file (PUT /snapshot/load
    // mem_backend Uffd; vmm/snapshot/uffd_backend.hpp).
    bool uffd = false;
};

struct MachineConfig {
    std::filesystem::path kernel;
    std::optional<std::filesystem::path> initrd;
    // Without --cmdline: the serial console, and reboot and panic paths that end kvmlet by
    // themselves (reboot=k resets through the i8042; panic=1 reboots a second after a panic).
    std::string cmdline = default_cmdline;
    std::uint32_t cpus = 1;                  // 1..max_cpus
    std::uint64_t memory_bytes = 128 * MiB;  // multiple of 4 KiB, >= min_memory
    CpuTemplate cpu_template = CpuTemplate::host;
    RebootAction on_reboot = RebootAction::exit;
    std::optional<HostCompat> host_compat;  // nullopt: auto-detect (vmm/vcpu/host_compat.hpp)
    BootProtocol boot_protocol = BootProtocol::automatic;
    std::vector<DiskConfig> disks;         // virtio-blk, in this order (vda, vdb, ...)
    std::vector<NetInterfaceConfig> nets;  // virtio-net, in this order (eth0, eth1, ...)
    ConsoleKind console = ConsoleKind::serial;
    std::optional<virtio::RngConfig> rng;           // nullopt: no virtio-rng
    std::optional<virtio::VsockConfig> vsock;       // nullopt: no virtio-vsock (hybrid, as Firecracker's)
    std::optional<std::filesystem::path> timeline;  // --timeline: where to write the JSON
    VirtioTransport transport = VirtioTransport::pci;
    // ACPI tables (RSDP, XSDT, FADT, MADT, MCFG, DSDT). Without them a kernel learns its CPUs from
    // the MP table, and virtio-mmio devices from the command line kvmlet appends.
    bool acpi = true;
    // The in-kernel i8254 PIT (KVM_CREATE_PIT2). Off saves its creation and teardown (a kernel
    // thread each: 3-8 ms and 5-15 ms on a kvm-pvm host, tools/bench/vm_teardown.c) for a guest
    // that keeps time without it, as Linux does with the TSC-deadline timer and a known TSC rate.
    bool pit = true;
    // KVM's dirty log on the RAM slots and the VMM's own marks (machine-config track_dirty_pages,
    // PUT /snapshot/load track_dirty_pages): what Diff snapshots need.
    bool track_dirty_pages = false;
    bool verbose = false;
    // On a stop signal (SIGTERM, SIGINT, SIGHUP), first ask the guest to shut down (Ctrl-Alt-Del
    // on the i8042 keyboard, and the ACPI power button) and stop only if it has not after this long, or at a
    // second signal. nullopt: stop at once (kvmlet run). The Firecracker way sets it (api/vm_resources.hpp).
    std::optional<std::chrono::milliseconds> stop_grace;
    // Restore this snapshot: the machine's shape (vCPUs, memory, ACPI, transport) comes from its
    // state file, and nothing is loaded into guest memory (kernel, initrd, tables).
    std::optional<RestoreFiles> restore;

    static constexpr char const* default_cmdline = "console=ttyS0 reboot=k panic=1";
    static constexpr std::uint32_t max_cpus = 64;
    static constexpr std::uint64_t min_memory = 4 * MiB;
    static constexpr std::size_t max_disks = 16;
    static constexpr std::size_t max_nets = 8;
};

}  // namespace kvmlet
