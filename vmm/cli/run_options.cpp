#include "vmm/cli/run_options.hpp"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <vector>

#include "vmm/base/error.hpp"
#include "vmm/base/guest_address.hpp"
#include "vmm/cli/memory_size.hpp"
#include "vmm/cli/rate_limit_option.hpp"

namespace kvmlet::cli {

namespace {

constexpr std::uint64_t memory_granule = 4 * KiB;  // KVM maps guest RAM in whole host pages

template <class E>
struct Choice {
    std::string_view name;
    E value;
};

constexpr std::array<Choice<CpuTemplate>, 2> cpu_templates{
    {{"host", CpuTemplate::host}, {"minimal", CpuTemplate::minimal}}};
constexpr std::array<Choice<RebootAction>, 2> reboot_actions{
    {{"exit", RebootAction::exit}, {"restart", RebootAction::restart}}};
constexpr std::array<Choice<BootProtocol>, 3> boot_protocols{
    {{"auto", BootProtocol::automatic}, {"linux64", BootProtocol::linux64}, {"pvh", BootProtocol::pvh}}};
constexpr std::array<Choice<ConsoleKind>, 3> console_kinds{
    {{"serial", ConsoleKind::serial}, {"virtio", ConsoleKind::virtio}, {"none", ConsoleKind::none}}};
constexpr std::array<Choice<VirtioTransport>, 2> transports{
    {{"pci", VirtioTransport::pci}, {"mmio", VirtioTransport::mmio}}};
constexpr std::array<Choice<bool>, 2> on_off{{{"on", true}, {"off", false}}};
constexpr std::array<Choice<security::SeccompMode>, 3> seccomp_modes{{{"kill", security::SeccompMode::kill},
                                                                      {"log", security::SeccompMode::log},
                                                                      {"off", security::SeccompMode::off}}};
constexpr std::array<Choice<std::optional<HostCompat>>, 3> host_compat_modes{
    {{"auto", std::nullopt}, {"pvm", HostCompat::pvm}, {"none", HostCompat::none}}};

// The value as an error message shows it: '' when empty, so the message still reads.
std::string shown(std::string_view value) {
    return value.empty() ? "''" : std::string(value);
}

[[noreturn]] void fail(std::string_view name, std::string_view value, std::string_view problem) {
    throw UsageError(fmt::format("{} {}: {}", name, shown(value), problem));
}

// "a or b", "a, b or c".
template <class E, std::size_t N>
std::string choice_list(std::array<Choice<E>, N> const& choices) {
    std::string list;
    for (std::size_t i = 0; i < N; ++i) {
        if (i > 0) list += i + 1 == N ? " or " : ", ";
        list += choices[i].name;
    }
    return list;
}

template <class E, std::size_t N>
E parse_choice(std::array<Choice<E>, N> const& choices, std::string_view name, std::string_view value) {
    for (auto const& choice : choices) {
        if (choice.name == value) return choice.value;
    }
    fail(name, value, "must be " + choice_list(choices));
}

template <class E, std::size_t N>
std::string name_of(std::array<Choice<E>, N> const& choices, E value) {
    for (auto const& choice : choices) {
        if (choice.value == value) return std::string(choice.name);
    }
    return "?";
}

void apply_kernel(RunState& state, std::string_view name, std::string_view value) {
    if (value.empty()) fail(name, value, "empty path");
    state.config.kernel = std::filesystem::path(value);
}

void apply_initrd(RunState& state, std::string_view name, std::string_view value) {
    if (value.empty()) fail(name, value, "empty path");
    state.config.initrd = std::filesystem::path(value);
}

// argv strings end at their first NUL, so a value cannot hold one; only the length is checked.
void apply_cmdline(RunState& state, std::string_view name, std::string_view value) {
    if (value.size() > max_cmdline_bytes)
        throw UsageError(
            fmt::format("{}: {} bytes, more than the {} allowed", name, value.size(), max_cmdline_bytes));
    state.config.cmdline = std::string(value);
}

void apply_cpus(RunState& state, std::string_view name, std::string_view value) {
    std::uint64_t cpus = 0;
    char const* const end = value.data() + value.size();
    auto const [digits_end, ec] = std::from_chars(value.data(), end, cpus);
    if (ec == std::errc::invalid_argument || digits_end != end) fail(name, value, "not a number");
    if (ec == std::errc::result_out_of_range || cpus < 1 || cpus > MachineConfig::max_cpus)
        fail(name, value, fmt::format("must be 1 to {}", MachineConfig::max_cpus));
    state.config.cpus = static_cast<std::uint32_t>(cpus);
}

void apply_memory(RunState& state, std::string_view name, std::string_view value) {
    auto const bytes = parse_memory_size(value);
    if (!bytes) fail(name, value, bytes.error());
    if (*bytes < MachineConfig::min_memory)
        fail(name, value, fmt::format("must be at least {}", format_memory_size(MachineConfig::min_memory)));
    if (*bytes % memory_granule != 0)
        fail(name, value, fmt::format("must be a multiple of {}", format_memory_size(memory_granule)));
    if (*bytes > state.host_memory_bytes)
        fail(name, value,
             fmt::format("exceeds host memory ({})", format_memory_size(state.host_memory_bytes)));
    state.config.memory_bytes = *bytes;
}

void apply_cpu_template(RunState& state, std::string_view name, std::string_view value) {
    state.config.cpu_template = parse_choice(cpu_templates, name, value);
}

void apply_on_reboot(RunState& state, std::string_view name, std::string_view value) {
    state.config.on_reboot = parse_choice(reboot_actions, name, value);
}

void apply_host_compat(RunState& state, std::string_view name, std::string_view value) {
    state.config.host_compat = parse_choice(host_compat_modes, name, value);
}

void apply_seccomp(RunState& state, std::string_view name, std::string_view value) {
    state.seccomp = parse_choice(seccomp_modes, name, value);
}

void apply_boot_protocol(RunState& state, std::string_view name, std::string_view value) {
    state.config.boot_protocol = parse_choice(boot_protocols, name, value);
}

constexpr std::array<Choice<CacheMode>, 2> cache_modes{
    {{"writeback", CacheMode::writeback}, {"none", CacheMode::none}}};
constexpr std::size_t max_interface_name_bytes = 16;  // IFNAMSIZ, with the NUL

void add_limit(virtio::RateLimiterConfig& limiter, std::string_view name, std::string_view value,
               std::string_view limit) {
    if (auto problem = add_rate_limit(limiter, limit)) fail(name, value, *problem);
}

// The limiters a property's rate limits go to: rate= (--disk: the drive's; --net: both
// directions'), rx-rate= and tx-rate= (--net); none for other properties.
std::vector<virtio::RateLimiterConfig*> rate_targets(DiskConfig& disk, std::string_view item) {
    if (item.starts_with("rate=")) return {&disk.rate_limiter};
    return {};
}
std::vector<virtio::RateLimiterConfig*> rate_targets(NetInterfaceConfig& net, std::string_view item) {
    if (item.starts_with("rate=")) return {&net.rx_rate_limiter, &net.tx_rate_limiter};
    if (item.starts_with("rx-rate=")) return {&net.rx_rate_limiter};
    if (item.starts_with("tx-rate=")) return {&net.tx_rate_limiter};
    return {};
}

// Applies the comma-separated properties of `value` from `start` with apply_property; a LIMIT
// after a rate property (rate=bw:50M/s,ops:2000/s) is one more limit of that property.
template <class Config, class Apply>
void apply_properties(Config& config, std::string_view name, std::string_view value, std::size_t start,
                      Apply apply_property) {
    std::vector<virtio::RateLimiterConfig*> rate;
    while (start != std::string_view::npos) {
        std::size_t const next = value.find(',', start);
        std::string_view const item =
            value.substr(start, next == std::string_view::npos ? next : next - start);
        start = next == std::string_view::npos ? next : next + 1;
        if (!rate.empty() && is_rate_limit(item)) {
            for (auto* limiter : rate) add_limit(*limiter, name, value, item);
            continue;
        }
        rate = rate_targets(config, item);
        if (rate.empty()) {
            apply_property(config, name, value, item);
            continue;
        }
        for (auto* limiter : rate) add_limit(*limiter, name, value, item.substr(item.find('=') + 1));
    }
}

void apply_disk_property(DiskConfig& disk, std::string_view name, std::string_view value,
                         std::string_view item) {
    if (item == "readonly") {
        disk.read_only = true;
    } else if (item.starts_with("id=")) {
        disk.id = std::string(item.substr(3));
        if (disk.id.empty()) fail(name, value, "id must not be empty");
        if (auto problem = disk_id_problem(disk.id)) fail(name, value, fmt::format("id {}", *problem));
    } else if (item.starts_with("cache=")) {
        disk.cache = parse_choice(cache_modes, std::string(name) + " cache", item.substr(6));
    } else {
        fail(
            name, value,
            fmt::format("unknown property '{}' (readonly, id=NAME, cache=writeback|none, rate=LIMIT)", item));
    }
}

// PATH[,readonly][,id=NAME][,cache=writeback|none][,rate=LIMIT[,LIMIT]]
void apply_disk(RunState& state, std::string_view name, std::string_view value) {
    if (state.config.disks.size() == MachineConfig::max_disks)
        fail(name, value, fmt::format("at most {} disks", MachineConfig::max_disks));
    DiskConfig disk;
    std::size_t const comma = value.find(',');
    disk.path = std::string(value.substr(0, comma));
    if (disk.path.empty()) fail(name, value, "empty path");
    apply_properties(disk, name, value, comma == std::string_view::npos ? comma : comma + 1,
                     apply_disk_property);
    state.config.disks.push_back(std::move(disk));
}

void apply_net_property(NetInterfaceConfig& net, std::string_view name, std::string_view value,
                        std::string_view item) {
    if (item == "tap=auto") {
        net.tap.reset();
    } else if (item.starts_with("tap=")) {
        net.tap = std::string(item.substr(4));
        if (net.tap->empty() || net.tap->size() >= max_interface_name_bytes)
            fail(name, value,
                 fmt::format("tap name must be 1 to {} characters", max_interface_name_bytes - 1));
    } else if (item.starts_with("mac=")) {
        net.mac = std::string(item.substr(4));
    } else if (item == "offloads=off" || item == "offloads=on") {
        net.offloads = item == "offloads=on";
    } else {
        fail(name, value,
             fmt::format("unknown property '{}' (tap=NAME|auto, mac=MAC, offloads=on|off, rate=LIMIT, "
                         "rx-rate=LIMIT, tx-rate=LIMIT)",
                         item));
    }
}

// tap=NAME|auto[,mac=MAC][,offloads=on|off][,rate=LIMIT[,LIMIT]][,rx-rate=...][,tx-rate=...]
void apply_net(RunState& state, std::string_view name, std::string_view value) {
    if (state.config.nets.size() == MachineConfig::max_nets)
        fail(name, value, fmt::format("at most {} network interfaces", MachineConfig::max_nets));
    if (!value.starts_with("tap=")) fail(name, value, "must start with tap=NAME or tap=auto");
    NetInterfaceConfig net;
    apply_properties(net, name, value, 0, apply_net_property);
    state.config.nets.push_back(std::move(net));
}

void apply_console(RunState& state, std::string_view name, std::string_view value) {
    state.config.console = parse_choice(console_kinds, name, value);
}

void apply_transport(RunState& state, std::string_view name, std::string_view value) {
    state.config.transport = parse_choice(transports, name, value);
}

void apply_acpi(RunState& state, std::string_view name, std::string_view value) {
    state.config.acpi = parse_choice(on_off, name, value);
}

void apply_pit(RunState& state, std::string_view name, std::string_view value) {
    state.config.pit = parse_choice(on_off, name, value);
}

void apply_rng(RunState& state, std::string_view, std::string_view) {
    if (!state.config.rng) state.config.rng.emplace();
}

// BYTES (per second, the bucket holding one second's worth) or LIMIT[,LIMIT] as --disk's rate=.
void apply_rng_rate(RunState& state, std::string_view name, std::string_view value) {
    virtio::RngConfig rng;
    if (is_rate_limit(value)) {
        std::size_t start = 0;
        while (start != std::string_view::npos) {
            std::size_t const next = value.find(',', start);
            add_limit(rng.rate_limiter, name, value,
                      value.substr(start, next == std::string_view::npos ? next : next - start));
            start = next == std::string_view::npos ? next : next + 1;
        }
    } else {
        std::uint64_t rate = 0;
        char const* const end = value.data() + value.size();
        auto const [digits_end, ec] = std::from_chars(value.data(), end, rate);
        if (ec == std::errc::invalid_argument || digits_end != end)
            fail(name, value,
                 "not a number of bytes per second nor a LIMIT (bw:SIZE/PERIOD, ops:COUNT/PERIOD)");
        if (ec == std::errc::result_out_of_range || rate == 0)
            fail(name, value, "must be at least 1 byte per second");
        rng.rate_limiter.bandwidth =
            virtio::BucketConfig{.size = rate, .one_time_burst = 0, .refill_time = std::chrono::seconds(1)};
    }
    state.config.rng = rng;
}

// cid=N,uds=PATH (PATH without commas)
void apply_vsock(RunState& state, std::string_view name, std::string_view value) {
    std::optional<std::uint64_t> cid;
    std::string uds;
    std::size_t start = 0;
    while (start != std::string_view::npos) {
        std::size_t const next = value.find(',', start);
        std::string_view const item =
            value.substr(start, next == std::string_view::npos ? next : next - start);
        start = next == std::string_view::npos ? next : next + 1;
        if (item.starts_with("cid=")) {
            std::uint64_t n = 0;
            auto const digits = item.substr(4);
            auto const [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
            if (ec != std::errc{} || end != digits.data() + digits.size() || n < 3 || n > 0xffff'fffe)
                fail(name, value, "cid must be a number from 3 to 4294967294");
            cid = n;
        } else if (item.starts_with("uds=") && item.size() > 4) {
            uds = std::string(item.substr(4));
        } else {
            fail(name, value, fmt::format("unknown property '{}' (cid=N, uds=PATH)", item));
        }
    }
    if (!cid || uds.empty()) fail(name, value, "needs both cid=N and uds=PATH");
    state.config.vsock = virtio::VsockConfig{.guest_cid = static_cast<std::uint32_t>(*cid), .uds_path = uds};
}

void apply_timeline(RunState& state, std::string_view name, std::string_view value) {
    if (value.empty()) fail(name, value, "empty path");
    state.config.timeline = std::filesystem::path(value);
}

void apply_restore(RunState& state, std::string_view name, std::string_view value) {
    if (value.empty()) fail(name, value, "empty path");
    state.restore_state = std::string(value);
}

void apply_mem(RunState& state, std::string_view name, std::string_view value) {
    if (value.empty()) fail(name, value, "empty path");
    state.restore_memory = std::string(value);
}

void apply_verbose(RunState& state, std::string_view, std::string_view) {
    state.config.verbose = true;
}

void apply_config(RunState& state, std::string_view name, std::string_view value) {
    if (value.empty()) fail(name, value, "empty path");
    state.config_file = std::string(value);
}

void apply_api_sock(RunState& state, std::string_view name, std::string_view value) {
    if (value.empty()) fail(name, value, "empty path");
    state.api_sock = std::string(value);
}

void apply_help(RunState& state, std::string_view, std::string_view) {
    state.help = true;
}

constexpr std::array<OptionSpec, 26> options{{
    {.name = "--kernel",
     .value_name = "PATH",
     .help = "guest kernel image",
     .required = true,
     .apply = apply_kernel},
    {.name = "--initrd",
     .value_name = "PATH",
     .help = "initial ramdisk for a Linux kernel (an uncompressed cpio boots fastest)",
     .default_text =
         [](MachineConfig const& c) { return c.initrd ? c.initrd->string() : std::string("none"); },
     .apply = apply_initrd},
    {.name = "--cmdline",
     .value_name = "STR",
     .help = "kernel command line, at most 4096 bytes here; the kernel's own\n"
             "limit applies too (2047 for x86 Linux, or the bzImage's cmdline_size)",
     .default_text =
         [](MachineConfig const& c) { return c.cmdline.empty() ? std::string("none") : c.cmdline; },
     .apply = apply_cmdline},
    {.name = "--boot-protocol",
     .value_name = "auto|linux64|pvh",
     .help = "how the kernel is entered: the Linux 64-bit entry with a zero page,\n"
             "or the PVH 32-bit entry; auto uses PVH when the ELF has its note",
     .default_text = [](MachineConfig const& c) { return name_of(boot_protocols, c.boot_protocol); },
     .apply = apply_boot_protocol},
    {.name = "--cpus",
     .value_name = "N",
     .help = "number of vCPUs, 1 to 64",
     .default_text = [](MachineConfig const& c) { return std::to_string(c.cpus); },
     .apply = apply_cpus},
    {.name = "--memory",
     .value_name = "SIZE",
     .help = "guest RAM, from 4 MiB to host RAM, a multiple of 4 KiB: 512M, 2G\n"
             "(K, M, G, T are binary units; a bare number is MiB)",
     .default_text = [](MachineConfig const& c) { return format_memory_size(c.memory_bytes); },
     .apply = apply_memory},
    {.name = "--cpu-template",
     .value_name = "host|minimal",
     .help = "CPU features the guest sees:\nall the host's, or a minimal baseline",
     .default_text = [](MachineConfig const& c) { return name_of(cpu_templates, c.cpu_template); },
     .apply = apply_cpu_template},
    {.name = "--on-reboot",
     .value_name = "exit|restart",
     .help = "when the guest reboots:\nexit kvmlet (status 0), or restart the guest",
     .default_text = [](MachineConfig const& c) { return name_of(reboot_actions, c.on_reboot); },
     .apply = apply_on_reboot},
    {.name = "--host-compat",
     .value_name = "auto|pvm|none",
     .help = "work around a host KVM that emulates guest kernel code:\n"
             "auto detects kvm_pvm; pvm forces the workarounds; none turns them off",
     .default_text = [](MachineConfig const& c) { return name_of(host_compat_modes, c.host_compat); },
     .apply = apply_host_compat},
    {.name = "--disk",
     .value_name = "PATH[,readonly][,id=NAME][,cache=writeback|none][,rate=LIMIT[,LIMIT]]",
     .help = "a raw disk image as a virtio-blk device (vda, vdb, ... in order),\n"
             "at most 16; locked so no other VM writes it at the same time.\n"
             "rate= limits it with token buckets (Firecracker's rate_limiter), LIMIT:\n"
             "bw:SIZE/PERIOD or ops:COUNT/PERIOD, each with an optional :burst=N;\n"
             "SIZE in bytes with K, M or G, PERIOD s, ms, Ns or Nms (up to 24 h):\n"
             "rate=bw:50M/s,ops:2000/s; rate=bw:1M/100ms:burst=64M",
     .repeatable = true,
     .apply = apply_disk},
    {.name = "--net",
     .value_name = "tap=NAME|auto[,mac=MAC][,offloads=on|off][,rate=LIMIT[,LIMIT]]",
     .help = "a virtio-net interface (eth0, eth1, ... in order) on an existing TAP,\n"
             "or on one kvmlet creates (auto; removed on exit); at most 8.\n"
             "rate= limits receive and transmit alike (each its own buckets; LIMIT as\n"
             "for --disk, a packet is one op), rx-rate= and tx-rate= one direction:\n"
             "rate=bw:100M/s; rx-rate=bw:10M/s,tx-rate=ops:1000/s",
     .repeatable = true,
     .apply = apply_net},
    {.name = "--console",
     .value_name = "serial|virtio|none",
     .help = "where stdin and stdout go: the 16550 on COM1 (ttyS0), virtio-console\n"
             "port 0 (hvc0; COM1 output still reaches stdout), or nowhere",
     .default_text = [](MachineConfig const& c) { return name_of(console_kinds, c.console); },
     .apply = apply_console},
    {.name = "--rng", .help = "add a virtio-rng device fed by the host's getrandom(2)", .apply = apply_rng},
    {.name = "--transport",
     .value_name = "pci|mmio",
     .help = "how virtio devices attach: virtio-pci with MSI-X (stock kernels),\n"
             "or virtio-mmio (minimal kernels, fewer exits at boot)",
     .default_text = [](MachineConfig const& c) { return name_of(transports, c.transport); },
     .apply = apply_transport},
    {.name = "--acpi",
     .value_name = "on|off",
     .help = "ACPI tables (CPUs, PCI, devices, power-off); off: the MP table only,\n"
             "and virtio-mmio devices named on the kernel command line",
     .default_text = [](MachineConfig const& c) { return name_of(on_off, c.acpi); },
     .apply = apply_acpi},
    {.name = "--pit",
     .value_name = "on|off",
     .help = "the in-kernel i8254 timer (PIT); off for guests that need none\n"
             "(Linux with the TSC-deadline timer): a faster start",
     .default_text = [](MachineConfig const& c) { return name_of(on_off, c.pit); },
     .apply = apply_pit},
    {.name = "--rng-rate",
     .value_name = "BYTES|LIMIT[,LIMIT]",
     .help = "limit virtio-rng (implies --rng): to BYTES per second,\n"
             "or with token buckets as --disk's rate= (Firecracker's\n"
             "entropy rate_limiter)",
     .default_text = [](MachineConfig const&) { return std::string("unlimited"); },
     .apply = apply_rng_rate},
    {.name = "--vsock",
     .value_name = "cid=N,uds=PATH",
     .help = "a virtio-vsock device with guest CID N (3 or more), relayed to Unix\n"
             "sockets as Firecracker does: host processes connect to PATH and send\n"
             "'CONNECT <port>'; the guest's connections to port P go to PATH_P",
     .apply = apply_vsock},
    {.name = "--timeline",
     .value_name = "PATH",
     .help = "write when each boot phase was reached (wall and CPU time since\n"
             "process start) and the VM exits per phase, as JSON",
     .apply = apply_timeline},
    {.name = "--restore",
     .value_name = "SNAPSHOT",
     .help = "restore this snapshot (docs/snapshot.md) instead of booting: the guest\n"
             "goes on where it was paused. Needs --mem; no --kernel, and the snapshot\n"
             "sets the vCPUs, memory, ACPI and transport",
     .apply = apply_restore},
    {.name = "--mem",
     .value_name = "PATH",
     .help = "the snapshot's guest memory file (with --restore), mapped copy-on-write",
     .apply = apply_mem},
    {.name = "--config",
     .value_name = "FILE",
     .help = "a config file in Firecracker's schema (docs/api.md); it boots at once.\n"
             "Only --api-sock, --seccomp and --verbose go with it",
     .apply = apply_config},
    {.name = "--api-sock",
     .value_name = "PATH",
     .help = "serve Firecracker's HTTP API on this Unix socket; without --config the\n"
             "microVM waits for its configuration and InstanceStart there",
     .apply = apply_api_sock},
    {.name = "--seccomp",
     .value_name = "kill|log|off",
     .help = "a system call outside its thread's allow-list (docs/security.md): kills\n"
             "kvmlet, naming the call and the thread (status 148); or is allowed and\n"
             "written to the audit log; or off: no filters",
     .default_text = [](MachineConfig const&) { return std::string("kill"); },
     .apply = apply_seccomp},
    {.name = "--verbose", .short_name = "-v", .help = "log more detail to stderr", .apply = apply_verbose},
    {.name = "--help", .short_name = "-h", .help = "print this help and exit", .apply = apply_help},
}};

}  // namespace

std::span<OptionSpec const> run_options() noexcept {
    return options;
}

}  // namespace kvmlet::cli
