#pragma once
// A microVM as Firecracker's config file and API describe it (../shared/contracts/
// firecracker-api.yaml): what the user asked for, in Firecracker's terms, before it becomes a
// MachineConfig. The config file, the API's PUT/PATCH requests and GET /vm/config all go through
// these types, so a field means the same in each.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "devices/virtio/net/mmds/mmds_store.hpp"
#include "vmm/api/json_reader.hpp"
#include "vmm/machine/machine_config.hpp"

namespace kvmlet::api {

struct TokenBucket {
    std::uint64_t size = 0;
    std::uint64_t refill_time = 0;  // ms
    std::optional<std::uint64_t> one_time_burst;
};

struct RateLimiter {
    std::optional<TokenBucket> bandwidth;
    std::optional<TokenBucket> ops;
};

struct BootSource {
    std::string kernel_image_path;
    std::optional<std::string> initrd_path;
    std::optional<std::string> boot_args;
};

struct MachineSettings {
    std::uint32_t vcpu_count = 1;
    std::uint64_t mem_size_mib = 128;
    bool smt = false;
    bool track_dirty_pages = false;
    std::string cpu_template = "None";
    std::string huge_pages = "None";

    static constexpr std::uint32_t max_vcpus = 32;  // Firecracker's limit
};

struct Drive {
    std::string drive_id;
    std::optional<std::string> path_on_host;
    bool is_root_device = false;
    bool is_read_only = false;
    std::optional<std::string> partuuid;
    std::string cache_type = "Unsafe";
    std::string io_engine = "Sync";
    std::optional<RateLimiter> rate_limiter;
};

struct NetworkInterface {
    std::string iface_id;
    std::string host_dev_name;
    std::optional<std::string> guest_mac;
    std::optional<std::uint32_t> mtu;
    std::optional<RateLimiter> rx_rate_limiter;
    std::optional<RateLimiter> tx_rate_limiter;
};

struct VsockSettings {
    std::uint32_t guest_cid = 3;
    std::string uds_path;
    std::optional<std::string> vsock_id;  // deprecated by Firecracker; kept for GET /vm/config
};

struct LoggerSettings {
    std::optional<std::string> log_path;
    std::string level = "Info";
    bool show_level = false;
    bool show_log_origin = false;
    std::optional<std::string> module;
};

struct MetricsSettings {
    std::string metrics_path;
    bool emit_id = false;
    std::map<std::string, std::string> properties;
};

struct MmdsSettings {
    std::string version = "V1";
    std::vector<std::string> network_interfaces;
    std::string ipv4_address = "169.254.169.254";
    bool imds_compat = false;
};

struct EntropySettings {
    std::optional<RateLimiter> rate_limiter;
};

// kvmlet's own settings, under the config file's "kvmlet" key (Firecracker has none of them).
struct KvmletSettings {
    VirtioTransport transport = VirtioTransport::mmio;  // what Firecracker's guests expect
    std::optional<HostCompat> host_compat;              // nullopt: auto-detect
    std::optional<std::string> timeline;
    ConsoleKind console = ConsoleKind::serial;
    bool acpi = true;
    // How long a stop signal waits for the guest to shut down after Ctrl-Alt-Del (0: not at all).
    std::uint64_t stop_grace_ms = 3000;
    static constexpr std::uint64_t max_stop_grace_ms = 600'000;
};

struct VmResources {
    std::optional<BootSource> boot_source;
    MachineSettings machine;
    std::vector<Drive> drives;
    std::vector<NetworkInterface> network_interfaces;
    std::optional<VsockSettings> vsock;
    std::optional<LoggerSettings> logger;
    std::optional<MetricsSettings> metrics;
    std::optional<MmdsSettings> mmds;
    std::optional<EntropySettings> entropy;
    KvmletSettings kvmlet;
    // The MMDS data store (PUT/PATCH/GET /mmds, --metadata): one per microVM, shared by every
    // copy of these resources and by the interfaces that serve MMDS, which read it on the VMM
    // thread while the API thread writes it.
    std::shared_ptr<virtio::net::mmds::MmdsStore> mmds_store =
        std::make_shared<virtio::net::mmds::MmdsStore>();

    // Adds or replaces (same id) a drive; the root device, of which there is at most one, goes
    // first so that it becomes /dev/vda. Throws ConfigError.
    void put_drive(Drive drive);
    // Adds or replaces (same id) an interface; host_dev_name and guest_mac must stay unique.
    void put_network_interface(NetworkInterface iface);
    Drive* find_drive(std::string_view id) noexcept;
};

// A rate_limiter object (Drive, NetworkInterface; PUT or PATCH). Throws ConfigError.
RateLimiter read_rate_limiter(Json const& json, std::string const& path);
// What the devices take (devices/virtio/rate_limiter.hpp): the buckets as given; one of size 0 or
// refill_time 0 means no limit (as a PATCH: removes that limit).
virtio::RateLimiterConfig device_limits(RateLimiter const& limiter);
// A PATCH's limiter merged into what there was: the buckets it names replace the old ones (a
// disabled one removes it), the others stay.
void merge_rate_limiter(std::optional<RateLimiter>& into, RateLimiter const& change);

// Firecracker's ids (drive_id, iface_id, ...): 1 to 64 characters of [A-Za-z0-9_].
void check_id(std::string_view id, std::string_view what);

// Readers of each object: `path` names it in errors. Each throws ConfigError.
BootSource read_boot_source(Json const& json, std::string const& path);
// PUT /machine-config replaces everything (missing optional fields take their defaults); PATCH
// (and a config file's later keys) changes only the fields given: both start from `base`.
MachineSettings read_machine_settings(Json const& json, std::string const& path, MachineSettings base,
                                      bool partial);
Drive read_drive(Json const& json, std::string const& path);
NetworkInterface read_network_interface(Json const& json, std::string const& path);
VsockSettings read_vsock(Json const& json, std::string const& path);
LoggerSettings read_logger(Json const& json, std::string const& path);
MetricsSettings read_metrics(Json const& json, std::string const& path);
MmdsSettings read_mmds_config(Json const& json, std::string const& path);
EntropySettings read_entropy(Json const& json, std::string const& path);
KvmletSettings read_kvmlet_settings(Json const& json, std::string const& path);

// A whole config file (Firecracker's --config-file schema plus the "kvmlet" key).
VmResources read_vm_resources(Json const& json);
VmResources load_config_file(std::string const& path);

// GET /vm/config and GET /machine-config.
Json to_json(VmResources const& resources);
Json to_json(MachineSettings const& machine);

// What the machine is built from. Throws ConfigError for what cannot start (no kernel, a
// setting kvmlet does not support); says once, in the log, which accepted fields it does not act
// on yet (entropy's rate limiter, ...). The interfaces named in mmds-config serve MMDS from mmds_store.
MachineConfig to_machine_config(VmResources const& resources);

}  // namespace kvmlet::api
