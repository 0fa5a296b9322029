#include "vmm/api/vm_resources.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "vmm/base/log.hpp"

namespace kvmlet::api {
namespace {

constexpr std::uint64_t u32_max = 0xffff'ffff;
constexpr std::uint64_t i64_max = 0x7fff'ffff'ffff'ffff;
constexpr std::size_t max_id_length = 64;
// A config file larger than this is not a config file.
constexpr std::uintmax_t max_config_bytes = 1 << 20;

// Says once per field, for the whole process, that kvmlet accepted a field but does not act on
// it (yet): never silently.
void not_acted_on(std::string const& field, std::string_view why) {
    static std::mutex mutex;
    static std::set<std::string> said;
    std::lock_guard lock(mutex);
    if (said.insert(field).second) log::warn("{}: accepted but not acted on ({})", field, why);
}

TokenBucket read_token_bucket(Json const& json, std::string const& path) {
    JsonObject in(json, path);
    TokenBucket bucket;
    bucket.size = in.uint("size", 0, i64_max);
    bucket.refill_time = in.uint("refill_time", 0, i64_max);
    bucket.one_time_burst = in.optional_uint("one_time_burst", 0, i64_max);
    in.finish();
    return bucket;
}

std::optional<RateLimiter> optional_rate_limiter(JsonObject& parent, std::string_view key) {
    Json const* json = parent.optional_object(key);
    if (json == nullptr) return std::nullopt;
    return read_rate_limiter(*json, parent.member_path(key));
}

std::optional<virtio::BucketConfig> device_bucket(std::optional<TokenBucket> const& bucket) {
    if (!bucket) return std::nullopt;
    return virtio::BucketConfig{.size = bucket->size,
                                .one_time_burst = bucket->one_time_burst.value_or(0),
                                .refill_time = std::chrono::milliseconds(bucket->refill_time)};
}

Json to_json(TokenBucket const& bucket) {
    Json out{{"size", bucket.size}, {"refill_time", bucket.refill_time}};
    if (bucket.one_time_burst) out["one_time_burst"] = *bucket.one_time_burst;
    return out;
}

Json to_json(RateLimiter const& limiter) {
    Json out = Json::object();
    if (limiter.bandwidth) out["bandwidth"] = to_json(*limiter.bandwidth);
    if (limiter.ops) out["ops"] = to_json(*limiter.ops);
    return out;
}

}  // namespace

RateLimiter read_rate_limiter(Json const& json, std::string const& path) {
    JsonObject in(json, path);
    RateLimiter limiter;
    if (Json const* b = in.optional_object("bandwidth"))
        limiter.bandwidth = read_token_bucket(*b, path + ".bandwidth");
    if (Json const* o = in.optional_object("ops")) limiter.ops = read_token_bucket(*o, path + ".ops");
    in.finish();
    return limiter;
}

virtio::RateLimiterConfig device_limits(RateLimiter const& limiter) {
    return {.bandwidth = device_bucket(limiter.bandwidth), .ops = device_bucket(limiter.ops)};
}

void merge_rate_limiter(std::optional<RateLimiter>& into, RateLimiter const& change) {
    auto const merge = [](std::optional<TokenBucket>& old, std::optional<TokenBucket> const& patch) {
        if (!patch) return;
        if (patch->size == 0 || patch->refill_time == 0)
            old.reset();
        else
            old = patch;
    };
    if (!into) into.emplace();
    merge(into->bandwidth, change.bandwidth);
    merge(into->ops, change.ops);
    if (!into->bandwidth && !into->ops) into.reset();
}

namespace {

void check_mac(std::string const& mac, std::string const& path) {
    bool ok = mac.size() == 17;
    for (std::size_t i = 0; ok && i < mac.size(); ++i)
        ok = i % 3 == 2 ? mac[i] == ':' : std::isxdigit(static_cast<unsigned char>(mac[i])) != 0;
    if (!ok) throw ConfigError(fmt::format("{}: \"{}\" is not a MAC address (06:00:ac:10:00:02)", path, mac));
}

template <class E>
struct Named {
    std::string_view name;
    E value;
};

constexpr Named<VirtioTransport> transports[] = {{"pci", VirtioTransport::pci},
                                                 {"mmio", VirtioTransport::mmio}};
constexpr Named<ConsoleKind> consoles[] = {
    {"serial", ConsoleKind::serial}, {"virtio", ConsoleKind::virtio}, {"none", ConsoleKind::none}};
constexpr Named<std::optional<HostCompat>> host_compats[] = {
    {"auto", std::nullopt}, {"pvm", HostCompat::pvm}, {"none", HostCompat::none}};

template <class E, std::size_t N>
std::optional<E> read_named(JsonObject& in, std::string_view key, Named<E> const (&names)[N]) {
    std::vector<std::string_view> choices;
    for (auto const& n : names) choices.push_back(n.name);
    auto value = in.optional_choice(key, choices);
    if (!value) return std::nullopt;
    for (auto const& n : names) {
        if (n.name == *value) return n.value;
    }
    return std::nullopt;
}

template <class E, std::size_t N>
std::string_view name_of(E value, Named<E> const (&names)[N]) {
    for (auto const& n : names) {
        if (n.value == value) return n.name;
    }
    return "?";
}

// The top-level keys of Firecracker's config file that kvmlet does not implement.
constexpr std::string_view unsupported_sections[] = {"balloon", "cpu-config", "pmem", "serial",
                                                     "memory-hotplug"};

}  // namespace

void check_id(std::string_view id, std::string_view what) {
    bool ok = !id.empty() && id.size() <= max_id_length && std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
    });
    if (!ok)
        throw ConfigError(
            fmt::format("{}: \"{}\" is not a valid id (1 to {} characters of A-Z, a-z, 0-9 and _)", what, id,
                        max_id_length));
}

Drive* VmResources::find_drive(std::string_view id) noexcept {
    auto it = std::find_if(drives.begin(), drives.end(), [&](Drive const& d) { return d.drive_id == id; });
    return it == drives.end() ? nullptr : &*it;
}

void VmResources::put_drive(Drive drive) {
    auto same = std::find_if(drives.begin(), drives.end(),
                             [&](Drive const& d) { return d.drive_id == drive.drive_id; });
    if (drive.is_root_device) {
        for (auto const& d : drives) {
            if (d.is_root_device && d.drive_id != drive.drive_id)
                throw ConfigError(fmt::format("drive {}: a root block device already exists ({})",
                                              drive.drive_id, d.drive_id));
        }
    }
    if (same != drives.end()) drives.erase(same);
    if (drives.size() >= MachineConfig::max_disks)
        throw ConfigError(
            fmt::format("drive {}: at most {} drives", drive.drive_id, MachineConfig::max_disks));
    if (drive.is_root_device)
        drives.insert(drives.begin(), std::move(drive));
    else
        drives.push_back(std::move(drive));
}

void VmResources::put_network_interface(NetworkInterface iface) {
    for (auto const& other : network_interfaces) {
        if (other.iface_id == iface.iface_id) continue;
        if (other.host_dev_name == iface.host_dev_name)
            throw ConfigError(fmt::format("network interface {}: host_dev_name {} is already used by {}",
                                          iface.iface_id, iface.host_dev_name, other.iface_id));
        if (iface.guest_mac && other.guest_mac == iface.guest_mac)
            throw ConfigError(fmt::format("network interface {}: guest_mac {} is already used by {}",
                                          iface.iface_id, *iface.guest_mac, other.iface_id));
    }
    auto same = std::find_if(network_interfaces.begin(), network_interfaces.end(),
                             [&](NetworkInterface const& n) { return n.iface_id == iface.iface_id; });
    if (same != network_interfaces.end()) {
        *same = std::move(iface);
        return;
    }
    if (network_interfaces.size() >= MachineConfig::max_nets)
        throw ConfigError(fmt::format("network interface {}: at most {} interfaces", iface.iface_id,
                                      MachineConfig::max_nets));
    network_interfaces.push_back(std::move(iface));
}

BootSource read_boot_source(Json const& json, std::string const& path) {
    JsonObject in(json, path);
    BootSource boot;
    boot.kernel_image_path = in.string("kernel_image_path");
    boot.initrd_path = in.optional_string("initrd_path");
    boot.boot_args = in.optional_string("boot_args");
    in.finish();
    if (boot.kernel_image_path.empty()) throw ConfigError(path + ".kernel_image_path: empty path");
    return boot;
}

MachineSettings read_machine_settings(Json const& json, std::string const& path, MachineSettings base,
                                      bool partial) {
    JsonObject in(json, path);
    MachineSettings m = partial ? base : MachineSettings{};
    auto vcpus = in.optional_uint("vcpu_count", 1, MachineSettings::max_vcpus);
    auto mem = in.optional_uint("mem_size_mib", 1, u32_max);
    if (!partial && !vcpus) throw ConfigError(in.member_path("vcpu_count") + ": missing field");
    if (!partial && !mem) throw ConfigError(in.member_path("mem_size_mib") + ": missing field");
    if (vcpus) m.vcpu_count = static_cast<std::uint32_t>(*vcpus);
    if (mem) m.mem_size_mib = *mem;
    if (auto v = in.optional_bool("smt")) m.smt = *v;
    if (auto v = in.optional_bool("track_dirty_pages")) m.track_dirty_pages = *v;
    if (auto v = in.optional_choice("cpu_template", {"C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None"}))
        m.cpu_template = *v;
    if (auto v = in.optional_choice("huge_pages", {"None", "Transparent", "2M"})) m.huge_pages = *v;
    in.finish();
    if (m.smt && m.vcpu_count > 1 && m.vcpu_count % 2 != 0)
        throw ConfigError(
            fmt::format("{}: with smt the vcpu_count must be 1 or even, not {}", path, m.vcpu_count));
    if (m.cpu_template != "None")
        throw ConfigError(fmt::format("{}.cpu_template: \"{}\" is not supported by kvmlet (only \"None\")",
                                      path, m.cpu_template));
    if (m.huge_pages == "2M")
        throw ConfigError(path + ".huge_pages: \"2M\" (hugetlbfs) is not supported by kvmlet");
    return m;
}

Drive read_drive(Json const& json, std::string const& path) {
    JsonObject in(json, path);
    Drive d;
    d.drive_id = in.string("drive_id");
    check_id(d.drive_id, in.member_path("drive_id"));
    d.path_on_host = in.optional_string("path_on_host");
    if (!in.has("is_root_device")) throw ConfigError(in.member_path("is_root_device") + ": missing field");
    d.is_root_device = *in.optional_bool("is_root_device");
    d.is_read_only = in.optional_bool("is_read_only").value_or(false);
    d.partuuid = in.optional_string("partuuid");
    if (auto v = in.optional_choice("cache_type", {"Unsafe", "Writeback"})) d.cache_type = *v;
    if (auto v = in.optional_choice("io_engine", {"Sync", "Async"})) d.io_engine = *v;
    d.rate_limiter = optional_rate_limiter(in, "rate_limiter");
    if (in.optional_string("socket"))
        throw ConfigError(in.member_path("socket") +
                          ": vhost-user block devices are not supported by kvmlet");
    in.finish();
    if (!d.path_on_host || d.path_on_host->empty())
        throw ConfigError(in.member_path("path_on_host") + ": missing field");
    return d;
}

NetworkInterface read_network_interface(Json const& json, std::string const& path) {
    JsonObject in(json, path);
    NetworkInterface n;
    n.iface_id = in.string("iface_id");
    check_id(n.iface_id, in.member_path("iface_id"));
    n.host_dev_name = in.string("host_dev_name");
    if (n.host_dev_name.empty() || n.host_dev_name.size() >= 16)
        throw ConfigError(in.member_path("host_dev_name") + ": a TAP name of 1 to 15 characters");
    n.guest_mac = in.optional_string("guest_mac");
    if (n.guest_mac) check_mac(*n.guest_mac, in.member_path("guest_mac"));
    if (auto mtu = in.optional_uint("mtu", 68, 65535)) n.mtu = static_cast<std::uint32_t>(*mtu);
    n.rx_rate_limiter = optional_rate_limiter(in, "rx_rate_limiter");
    n.tx_rate_limiter = optional_rate_limiter(in, "tx_rate_limiter");
    in.finish();
    return n;
}

VsockSettings read_vsock(Json const& json, std::string const& path) {
    JsonObject in(json, path);
    VsockSettings v;
    v.guest_cid = static_cast<std::uint32_t>(in.uint("guest_cid", 3, u32_max - 1));
    v.uds_path = in.string("uds_path");
    if (v.uds_path.empty()) throw ConfigError(in.member_path("uds_path") + ": empty path");
    v.vsock_id = in.optional_string("vsock_id");
    in.finish();
    return v;
}

LoggerSettings read_logger(Json const& json, std::string const& path) {
    JsonObject in(json, path);
    LoggerSettings l;
    l.log_path = in.optional_string("log_path");
    if (auto level = in.optional_string("level")) {
        static constexpr std::string_view levels[] = {"Error", "Warning", "Info", "Debug", "Trace", "Off"};
        auto match = std::find_if(std::begin(levels), std::end(levels), [&](std::string_view name) {
            return std::equal(name.begin(), name.end(), level->begin(), level->end(),
                              [](char a, char b) { return std::tolower(a) == std::tolower(b); });
        });
        if (match == std::end(levels))
            throw ConfigError(
                fmt::format("{}: \"{}\" is not one of Error, Warning, Info, Debug, Trace or Off",
                            in.member_path("level"), *level));
        l.level = std::string(*match);
    }
    l.show_level = in.optional_bool("show_level").value_or(false);
    l.show_log_origin = in.optional_bool("show_log_origin").value_or(false);
    l.module = in.optional_string("module");
    in.finish();
    return l;
}

MetricsSettings read_metrics(Json const& json, std::string const& path) {
    JsonObject in(json, path);
    MetricsSettings m;
    m.metrics_path = in.string("metrics_path");
    m.emit_id = in.optional_bool("emit_id").value_or(false);
    if (Json const* props = in.optional_object("properties")) {
        for (auto const& [key, value] : props->items()) {
            if (!value.is_string())
                throw ConfigError(fmt::format("{}.properties.{}: expected a string", path, key));
            m.properties[key] = value.get<std::string>();
        }
    }
    in.finish();
    return m;
}

MmdsSettings read_mmds_config(Json const& json, std::string const& path) {
    JsonObject in(json, path);
    MmdsSettings m;
    if (auto v = in.optional_choice("version", {"V1", "V2"})) m.version = *v;
    Json const* ifaces = in.optional_array("network_interfaces");
    if (ifaces == nullptr) throw ConfigError(in.member_path("network_interfaces") + ": missing field");
    for (std::size_t i = 0; i < ifaces->size(); ++i) {
        auto const& id = (*ifaces)[i];
        std::string where = element_path(in.member_path("network_interfaces"), i);
        if (!id.is_string()) throw ConfigError(where + ": expected a string");
        check_id(id.get<std::string>(), where);
        m.network_interfaces.push_back(id.get<std::string>());
    }
    if (auto v = in.optional_string("ipv4_address")) {
        unsigned a = 0, b = 0, c = 0, d = 0;
        char tail = 0;
        if (std::sscanf(v->c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 || a != 169 || b != 254 ||
            c < 1 || c > 254 || d > 255)
            throw ConfigError(fmt::format("{}: \"{}\" is not a link-local IPv4 address (169.254.x.y)",
                                          in.member_path("ipv4_address"), *v));
        m.ipv4_address = *v;
    }
    m.imds_compat = in.optional_bool("imds_compat").value_or(false);
    in.finish();
    return m;
}

EntropySettings read_entropy(Json const& json, std::string const& path) {
    JsonObject in(json, path);
    EntropySettings e;
    e.rate_limiter = optional_rate_limiter(in, "rate_limiter");
    in.finish();
    return e;
}

KvmletSettings read_kvmlet_settings(Json const& json, std::string const& path) {
    JsonObject in(json, path);
    KvmletSettings k;
    if (auto v = read_named(in, "transport", transports)) k.transport = *v;
    if (auto v = read_named(in, "host_compat", host_compats)) k.host_compat = *v;
    k.timeline = in.optional_string("timeline");
    if (auto v = read_named(in, "console", consoles)) k.console = *v;
    if (auto v = in.optional_bool("acpi")) k.acpi = *v;
    if (auto v = in.optional_uint("stop_grace_ms", 0, KvmletSettings::max_stop_grace_ms))
        k.stop_grace_ms = *v;
    in.finish();
    return k;
}

VmResources read_vm_resources(Json const& json) {
    JsonObject in(json, "");
    for (auto key : unsupported_sections) {
        if (in.has(key)) throw ConfigError(fmt::format("{}: not supported by kvmlet", key));
    }
    VmResources r;
    if (Json const* j = in.optional_object("boot-source"))
        r.boot_source = read_boot_source(*j, "boot-source");
    if (Json const* j = in.optional_object("machine-config"))
        r.machine = read_machine_settings(*j, "machine-config", {}, false);
    if (Json const* drives = in.optional_array("drives")) {
        for (std::size_t i = 0; i < drives->size(); ++i) {
            Drive d = read_drive((*drives)[i], element_path("drives", i));
            if (r.find_drive(d.drive_id) != nullptr)
                throw ConfigError(
                    fmt::format("{}: drive_id {} given twice", element_path("drives", i), d.drive_id));
            r.put_drive(std::move(d));
        }
    }
    if (Json const* nets = in.optional_array("network-interfaces")) {
        for (std::size_t i = 0; i < nets->size(); ++i) {
            NetworkInterface n = read_network_interface((*nets)[i], element_path("network-interfaces", i));
            for (auto const& other : r.network_interfaces) {
                if (other.iface_id == n.iface_id)
                    throw ConfigError(fmt::format("{}: iface_id {} given twice",
                                                  element_path("network-interfaces", i), n.iface_id));
            }
            r.put_network_interface(std::move(n));
        }
    }
    if (Json const* j = in.optional_object("vsock")) r.vsock = read_vsock(*j, "vsock");
    if (Json const* j = in.optional_object("logger")) r.logger = read_logger(*j, "logger");
    if (Json const* j = in.optional_object("metrics")) r.metrics = read_metrics(*j, "metrics");
    if (Json const* j = in.optional_object("mmds-config")) r.mmds = read_mmds_config(*j, "mmds-config");
    if (Json const* j = in.optional_object("entropy")) r.entropy = read_entropy(*j, "entropy");
    if (Json const* j = in.optional_object("kvmlet")) r.kvmlet = read_kvmlet_settings(*j, "kvmlet");
    in.finish();
    if (r.mmds) {
        for (auto const& id : r.mmds->network_interfaces) {
            bool known = std::any_of(r.network_interfaces.begin(), r.network_interfaces.end(),
                                     [&](NetworkInterface const& n) { return n.iface_id == id; });
            if (!known) throw ConfigError(fmt::format("mmds-config.network_interfaces: no interface {}", id));
        }
    }
    return r;
}

VmResources load_config_file(std::string const& path) {
    std::error_code ec;
    auto size = std::filesystem::file_size(path, ec);
    if (ec) throw ConfigError(fmt::format("config file {}: {}", path, ec.message()));
    if (!std::filesystem::is_regular_file(path))
        throw ConfigError(fmt::format("config file {}: not a regular file", path));
    if (size > max_config_bytes)
        throw ConfigError(
            fmt::format("config file {}: {} bytes, more than {}", path, size, max_config_bytes));
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    if (!file) throw ConfigError(fmt::format("config file {}: cannot read it", path));
    try {
        return read_vm_resources(parse_json(text.str(), "config file " + path));
    } catch (ConfigError const& e) {
        if (std::string_view(e.what()).starts_with("config file ")) throw;
        throw ConfigError(fmt::format("config file {}: {}", path, e.what()));
    }
}

Json to_json(MachineSettings const& m) {
    return Json{{"vcpu_count", m.vcpu_count},
                {"mem_size_mib", m.mem_size_mib},
                {"smt", m.smt},
                {"track_dirty_pages", m.track_dirty_pages},
                {"cpu_template", m.cpu_template},
                {"huge_pages", m.huge_pages}};
}

Json to_json(VmResources const& r) {
    Json out = Json::object();
    if (r.boot_source) {
        Json boot{{"kernel_image_path", r.boot_source->kernel_image_path}};
        if (r.boot_source->initrd_path) boot["initrd_path"] = *r.boot_source->initrd_path;
        if (r.boot_source->boot_args) boot["boot_args"] = *r.boot_source->boot_args;
        out["boot-source"] = boot;
    }
    out["machine-config"] = to_json(r.machine);
    out["drives"] = Json::array();
    for (auto const& d : r.drives) {
        Json drive{{"drive_id", d.drive_id},
                   {"path_on_host", d.path_on_host.value_or("")},
                   {"is_root_device", d.is_root_device},
                   {"is_read_only", d.is_read_only},
                   {"cache_type", d.cache_type},
                   {"io_engine", d.io_engine}};
        if (d.partuuid) drive["partuuid"] = *d.partuuid;
        if (d.rate_limiter) drive["rate_limiter"] = to_json(*d.rate_limiter);
        out["drives"].push_back(drive);
    }
    out["network-interfaces"] = Json::array();
    for (auto const& n : r.network_interfaces) {
        Json iface{{"iface_id", n.iface_id}, {"host_dev_name", n.host_dev_name}};
        if (n.guest_mac) iface["guest_mac"] = *n.guest_mac;
        if (n.mtu) iface["mtu"] = *n.mtu;
        if (n.rx_rate_limiter) iface["rx_rate_limiter"] = to_json(*n.rx_rate_limiter);
        if (n.tx_rate_limiter) iface["tx_rate_limiter"] = to_json(*n.tx_rate_limiter);
        out["network-interfaces"].push_back(iface);
    }
    if (r.vsock) {
        out["vsock"] = Json{{"guest_cid", r.vsock->guest_cid}, {"uds_path", r.vsock->uds_path}};
        if (r.vsock->vsock_id) out["vsock"]["vsock_id"] = *r.vsock->vsock_id;
    }
    if (r.logger) {
        Json logger{{"level", r.logger->level},
                    {"show_level", r.logger->show_level},
                    {"show_log_origin", r.logger->show_log_origin}};
        if (r.logger->log_path) logger["log_path"] = *r.logger->log_path;
        if (r.logger->module) logger["module"] = *r.logger->module;
        out["logger"] = logger;
    }
    if (r.metrics) {
        out["metrics"] = Json{{"metrics_path", r.metrics->metrics_path}, {"emit_id", r.metrics->emit_id}};
        if (!r.metrics->properties.empty()) out["metrics"]["properties"] = r.metrics->properties;
    }
    if (r.mmds)
        out["mmds-config"] = Json{{"version", r.mmds->version},
                                  {"network_interfaces", r.mmds->network_interfaces},
                                  {"ipv4_address", r.mmds->ipv4_address},
                                  {"imds_compat", r.mmds->imds_compat}};
    if (r.entropy) {
        out["entropy"] = Json::object();
        if (r.entropy->rate_limiter) out["entropy"]["rate_limiter"] = to_json(*r.entropy->rate_limiter);
    }
    out["kvmlet"] = Json{{"transport", name_of(r.kvmlet.transport, transports)},
                         {"host_compat", name_of(r.kvmlet.host_compat, host_compats)},
                         {"console", name_of(r.kvmlet.console, consoles)},
                         {"acpi", r.kvmlet.acpi},
                         {"stop_grace_ms", r.kvmlet.stop_grace_ms}};
    if (r.kvmlet.timeline) out["kvmlet"]["timeline"] = *r.kvmlet.timeline;
    return out;
}

namespace {

void say_what_is_not_acted_on(VmResources const& r) {
    auto const& m = r.machine;
    if (m.smt) not_acted_on("machine-config.smt", "each vCPU is presented as a core of its own");
    if (m.huge_pages == "Transparent")
        not_acted_on("machine-config.huge_pages", "guest RAM uses the host's default");
    for (auto const& d : r.drives) {
        if (d.io_engine == "Async")
            not_acted_on("drives[].io_engine", "requests run on a worker thread either way");
    }
    for (auto const& n : r.network_interfaces) {
        if (n.mtu) not_acted_on("network-interfaces[].mtu", "VIRTIO_NET_F_MTU is not offered");
    }
}

std::array<std::uint8_t, 4> ipv4_bytes(std::string const& text) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (std::sscanf(text.c_str(), "%u.%u.%u.%u", &a, &b, &c, &d) != 4 || a > 255 || b > 255 || c > 255 ||
        d > 255)
        throw ConfigError(fmt::format("mmds-config.ipv4_address: \"{}\" is not an IPv4 address", text));
    return {static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b), static_cast<std::uint8_t>(c),
            static_cast<std::uint8_t>(d)};
}

// What an interface named in mmds-config serves; one token authority for the whole microVM.
std::optional<virtio::net::mmds::MmdsConfig> mmds_config(VmResources const& r) {
    if (!r.mmds || r.mmds->network_interfaces.empty()) return std::nullopt;
    namespace mmds = virtio::net::mmds;
    return mmds::MmdsConfig{.version = r.mmds->version == "V2" ? mmds::Version::v2 : mmds::Version::v1,
                            .ipv4_address = ipv4_bytes(r.mmds->ipv4_address),
                            .imds_compat = r.mmds->imds_compat,
                            .store = r.mmds_store,
                            .tokens = std::make_shared<mmds::TokenAuthority>(),
                            .clock = {}};
}

std::string root_arguments(VmResources const& r) {
    if (r.drives.empty() || !r.drives.front().is_root_device) return {};
    Drive const& root = r.drives.front();
    std::string device = root.partuuid ? "PARTUUID=" + *root.partuuid : std::string("/dev/vda");
    return fmt::format("root={} {}", device, root.is_read_only ? "ro" : "rw");
}

}  // namespace

MachineConfig to_machine_config(VmResources const& r) {
    if (!r.boot_source)
        throw ConfigError("cannot start the microVM without a boot source (kernel_image_path)");
    say_what_is_not_acted_on(r);
    MachineConfig c;
    c.kernel = r.boot_source->kernel_image_path;
    if (r.boot_source->initrd_path) c.initrd = *r.boot_source->initrd_path;
    c.cmdline = r.boot_source->boot_args.value_or(MachineConfig::default_cmdline);
    if (auto root = root_arguments(r); !root.empty()) c.cmdline += " " + root;
    c.cpus = r.machine.vcpu_count;
    if (r.machine.mem_size_mib > (std::uint64_t{1} << 32))
        throw ConfigError(
            fmt::format("machine-config.mem_size_mib: {} MiB is too much", r.machine.mem_size_mib));
    c.memory_bytes = r.machine.mem_size_mib * MiB;
    c.track_dirty_pages = r.machine.track_dirty_pages;
    if (c.memory_bytes < MachineConfig::min_memory)
        throw ConfigError(
            fmt::format("machine-config.mem_size_mib: at least {} MiB", MachineConfig::min_memory / MiB));
    for (auto const& d : r.drives) {
        // The GET_ID string holds at most 20 bytes; Firecracker's ids may be longer.
        c.disks.push_back(DiskConfig{
            .path = *d.path_on_host,
            .read_only = d.is_read_only,
            .id = d.drive_id.substr(0, 20),
            .cache = CacheMode::writeback,
            .rate_limiter = d.rate_limiter ? device_limits(*d.rate_limiter) : virtio::RateLimiterConfig{}});
    }
    auto const mmds = mmds_config(r);
    for (auto const& n : r.network_interfaces) {
        bool const serves_mmds =
            mmds && std::find(r.mmds->network_interfaces.begin(), r.mmds->network_interfaces.end(),
                              n.iface_id) != r.mmds->network_interfaces.end();
        NetInterfaceConfig net{.id = n.iface_id,
                               .tap = n.host_dev_name,
                               .mac = n.guest_mac,
                               .mmds = serves_mmds ? mmds : std::nullopt};
        if (n.rx_rate_limiter) net.rx_rate_limiter = device_limits(*n.rx_rate_limiter);
        if (n.tx_rate_limiter) net.tx_rate_limiter = device_limits(*n.tx_rate_limiter);
        c.nets.push_back(std::move(net));
    }
    if (r.entropy)
        c.rng = virtio::RngConfig{.rate_limiter = r.entropy->rate_limiter
                                                      ? device_limits(*r.entropy->rate_limiter)
                                                      : virtio::RateLimiterConfig{}};
    if (r.vsock)
        c.vsock = virtio::VsockConfig{.guest_cid = r.vsock->guest_cid, .uds_path = r.vsock->uds_path};
    c.transport = r.kvmlet.transport;
    c.host_compat = r.kvmlet.host_compat;
    if (r.kvmlet.timeline) c.timeline = *r.kvmlet.timeline;
    c.console = r.kvmlet.console;
    c.acpi = r.kvmlet.acpi;
    c.stop_grace = std::chrono::milliseconds(r.kvmlet.stop_grace_ms);
    return c;
}

}  // namespace kvmlet::api
