// kvmlet: the command-line entry point. Parses the command line, builds the machine, runs it, and
// turns what happened into one of the documented exit statuses (see `kvmlet run --help`).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <span>
#include <sstream>

#include "vmm/api/api_server.hpp"
#include "vmm/api/logger.hpp"
#include "vmm/api/machine_launch.hpp"
#include "vmm/api/metrics.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/timeline.hpp"
#include "vmm/cli/command_line.hpp"
#include "vmm/cli/firecracker_command_line.hpp"
#include "vmm/cli/help_text.hpp"
#include "vmm/cli/host_memory.hpp"
#include "vmm/event/process_signals.hpp"
#include "vmm/event/terminal.hpp"
#include "vmm/jail/jailer.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/machine/input_files.hpp"
#include "vmm/machine/machine.hpp"
#include "vmm/machine/timeline_report.hpp"
#include "vmm/security/seccomp.hpp"
#include "vmm/snapshot/memory_file.hpp"
#include "vmm/vcpu/host_compat.hpp"

namespace kvmlet {
namespace {

// Prints how the guest stopped: the first line of the reason as one log line, details after it.
void report(StopReason const& reason) {
    auto newline = reason.message.find('\n');
    std::string first = reason.message.substr(0, newline);
    std::string detail = newline == std::string::npos ? "" : reason.message.substr(newline + 1);
    std::string line =
        first.empty() ? describe(reason.kind) : fmt::format("{}: {}", describe(reason.kind), first);
    if (reason.kind == StopKind::crashed)
        log::error("{}", line);
    else
        log::info("{}", line);
    if (!detail.empty()) std::fprintf(stderr, "%s\n", detail.c_str());
}

void finish_timeline(MachineConfig const& config, StopReason const& reason) {
    Timeline& timeline = process_timeline();
    timeline.mark(Phase::process_exit);
    if (config.verbose) log::info("{}", timeline_summary(timeline));
    if (config.timeline) write_timeline(*config.timeline, timeline, reason);
}

// The guest went on after stdout failed (`kvmlet run ... | head` with SIGPIPE ignored) or while
// nobody read it: say how much of its console output nobody got, and why, once per machine.
void report_dropped_output(Machine const& machine) {
    FdSink const& out = machine.console_out();
    if (out.dropped_bytes() > 0)
        log::info("console: {} bytes of guest output dropped ({})", out.dropped_bytes(), out.drop_reason());
}

// Builds and runs machines until one stops for good (a reset restarts with --on-reboot restart).
StopReason run_machines(MachineConfig const& config, KvmSystem const& kvm, ProcessSignals& signals) {
    for (;;) {
        Machine machine(config, kvm);
        // A stop signal that came while the machine was built ends kvmlet before the guest runs.
        StopReason reason = signals.stop_signal() ? signals.stop_reason() : machine.run(signals);
        report_dropped_output(machine);
        if (reason.kind != StopKind::reset || config.on_reboot != RebootAction::restart) return reason;
        // A stop signal that came while the machine stopped for its reset wins over the restart.
        if (signals.stop_signal()) return signals.stop_reason();
        log::info("guest reset: restarting (--on-reboot restart)");
    }
}

void settle_host_compat(MachineConfig& config) {
    if (!config.host_compat) {
        config.host_compat = detect_host_compat();
        if (*config.host_compat != HostCompat::none)
            log::info(
                "host-compat: {} host detected, compatibility mode on (--host-compat none turns it off)",
                name(*config.host_compat));
        else
            log::debug("host-compat: none (no kvm_pvm module: KVM runs guests unmodified)");
    }
}

ExitStatus run(MachineConfig config) {
    check_input_files(config);  // before /dev/kvm: a wrong file is the user's error on any host
    ProcessSignals signals;
    KvmSystem kvm;
    settle_host_compat(config);
    RawTerminal terminal(STDIN_FILENO);
    StopReason reason = run_machines(config, kvm, signals);
    report(reason);
    // After the machine is gone: tearing the VM down is part of what a boot costs.
    finish_timeline(config, reason);
    return exit_status(reason.kind);
}

api::Json read_metadata(std::string const& path) {
    std::ifstream file(path);
    if (!file) throw Error(fmt::format("--metadata {}: cannot read it", path));
    std::stringstream text;
    text << file.rdbuf();
    api::Json data = api::parse_json(text.str(), "--metadata " + path);
    if (!data.is_object()) throw Error(fmt::format("--metadata {}: expected a JSON object", path));
    return data;
}

// The resources a Firecracker-style run starts from: the config file's, with the command line's
// logger settings applied first (a config file's "logger" wins, as in Firecracker).
api::VmResources initial_resources(api::FirecrackerOptions const& options) {
    if (options.level || options.log_path || options.show_level || options.show_log_origin ||
        options.module) {
        api::LoggerSettings logger;
        if (options.level) logger = api::read_logger(api::Json{{"level", *options.level}}, "--level");
        logger.log_path = options.log_path;
        logger.show_level = options.show_level;
        logger.show_log_origin = options.show_log_origin;
        logger.module = options.module;
        api::apply_logger(logger);
    }
    if (options.verbose) log::set_level(log::Level::debug);
    api::VmResources resources;
    if (options.config_file) resources = api::load_config_file(*options.config_file);
    if (resources.logger) api::apply_logger(*resources.logger);
    if (options.enable_pci) resources.kvmlet.transport = VirtioTransport::pci;
    return resources;
}

// Thrown once a failed snapshot load has been answered and logged: kvmlet exits 1.
struct SnapshotLoadFailed {};

// Builds the machine (and its metrics writer, if configured) from a start request; a failure goes
// back to the API (the microVM stays "Not started", as in Firecracker) or, for a config file,
// ends kvmlet. Success is told to the API by the caller, once the machine is published.
std::unique_ptr<Machine> build_machine(api::MachineLaunch::StartRequest& request, KvmSystem const& kvm,
                                       std::string const& id, std::unique_ptr<api::MetricsWriter>& metrics) {
    try {
        check_input_files(request.config);
        settle_host_compat(request.config);
        if (request.resources.metrics)
            metrics = std::make_unique<api::MetricsWriter>(*request.resources.metrics, id, request.resources);
        return std::make_unique<Machine>(request.config, kvm);
    } catch (Error const& e) {
        if (!request.done) throw;
        log::error("{}: {}", request.config.restore ? "snapshot load" : "InstanceStart", e.what());
        request.done(std::string(e.what()));
        // Firecracker's rule: a failed snapshot load ends the process (after its answer).
        if (request.config.restore) throw SnapshotLoadFailed{};
        return nullptr;
    }
}

// The Firecracker way: configured by a file, the API or both; ends when the guest stops.
ExitStatus run_firecracker(api::FirecrackerOptions const& options) {
    api::VmResources resources = initial_resources(options);
    ProcessSignals signals;
    KvmSystem kvm;
    api::MachineLaunch launch;
    api::ApiRouter router({.id = options.id}, resources, launch);
    if (options.metadata) router.set_mmds_data(read_metadata(*options.metadata));
    std::optional<api::MachineLaunch::StartRequest> request;
    if (options.config_file) {
        request = api::MachineLaunch::StartRequest{resources, api::to_machine_config(resources), nullptr};
        router.started_elsewhere();
    }
    std::optional<api::ApiServer> server;
    if (options.api_sock) {
        server.emplace(*options.api_sock, [&router](api::ApiRequest const& r, api::Reply reply) {
            router.handle(r, std::move(reply));
        });
        launch.set_server(&*server);
        server->start();
        log::debug("api: listening on {}", *options.api_sock);
    }
    RawTerminal terminal(STDIN_FILENO);
    std::unique_ptr<Machine> machine;
    std::unique_ptr<api::MetricsWriter> metrics;
    MachineConfig config;
    while (!machine) {
        if (!request) request = launch.wait_for_start(signals);
        if (!request) return exit_status(signals.stop_reason().kind);
        try {
            machine = build_machine(*request, kvm, options.id, metrics);
        } catch (SnapshotLoadFailed const&) {
            launch.flush_replies();
            return ExitStatus::setup_error;
        }
        config = request->config;
        if (!machine) request.reset();
    }
    if (metrics) metrics->start_periodic(*machine);
    launch.publish(machine.get(), metrics.get());
    // InstanceStart is answered only now, so a request sent right after its 204 (PATCH /vm,
    // SendCtrlAltDel) finds the machine published.
    if (request->done) request->done(std::nullopt);
    request.reset();
    StopReason reason = signals.stop_signal() ? signals.stop_reason() : machine->run(signals);
    launch.publish(nullptr);
    if (metrics) {
        metrics->stop();
        if (auto error = metrics->write(*machine)) log::warn("{}", *error);  // the last line, at exit
    }
    report_dropped_output(*machine);
    machine.reset();
    report(reason);
    finish_timeline(config, reason);
    return exit_status(reason.kind);
}

// The one error line that ends kvmlet: in the log, and on stderr too when the log goes to a file.
void report_fatal(std::string_view message) noexcept {
    log::error("{}", message);
    if (api::log_goes_to_a_file())
        std::fprintf(stderr, "kvmlet: error: %.*s\n", static_cast<int>(message.size()), message.data());
}

// argv[0]'s file name: kvmlet speaks Firecracker's command line when called "firecracker", and
// is its jailer when called "jailer".
bool called(char const* argv0, std::string_view as) {
    if (argv0 == nullptr) return false;
    std::string_view name(argv0);
    if (auto slash = name.rfind('/'); slash != std::string_view::npos) name = name.substr(slash + 1);
    return name == as;
}
bool called_firecracker(char const* argv0) {
    return called(argv0, "firecracker");
}

// kvmlet snapshot-merge BASE DIFF: Firecracker's `snapshot-editor edit-memory rebase` (its users'
// way to restore a Diff snapshot: the Diff's pages written over the base Full memory file).
int merge_snapshot_memory(std::span<char const* const> args) {
    if (args.size() != 2 || args[0] == nullptr || args[1] == nullptr)
        throw UsageError("snapshot-merge: expected BASE DIFF, the base memory file and the Diff's");
    std::uint64_t const copied = snapshot::merge_memory_file(args[0], args[1]);
    log::info("snapshot-merge: {} KiB of {} written over {}", copied >> 10, args[1], args[0]);
    return 0;
}

// Set once the command line is read as Firecracker's: its usage errors point to its own help.
bool firecracker_syntax = false;

int main_inner(int argc, char** argv) {
    auto args = std::span<char const* const>(const_cast<char const* const*>(argv) + 1,
                                             static_cast<std::size_t>(argc > 0 ? argc - 1 : 0));
    if (called(argc > 0 ? argv[0] : nullptr, "jailer")) return jail::run_jail(args);
    if (!args.empty() && args[0] != nullptr && std::string_view(args[0]) == "jail")
        return jail::run_jail(args.subspan(1));
    if (!args.empty() && args[0] != nullptr && std::string_view(args[0]) == "snapshot-merge")
        return merge_snapshot_memory(args.subspan(1));
    // `/<exec-name> --id ID ...`: started by a jailer, where /proc (host memory) is out of reach.
    std::string_view first = args.empty() || args[0] == nullptr ? std::string_view{} : args[0];
    bool jailed = first == "--id" || first.starts_with("--id=");
    firecracker_syntax = called_firecracker(argc > 0 ? argv[0] : nullptr) || jailed || first == "firecracker";
    cli::Command command = called_firecracker(argc > 0 ? argv[0] : nullptr) || jailed
                               ? cli::parse_firecracker_command_line(args)
                               : cli::parse_command_line(args, cli::host_memory_bytes());
    process_timeline().mark(Phase::args_parsed);
    return std::visit(
        [](auto const& c) -> int {
            using T = std::decay_t<decltype(c)>;
            if constexpr (std::is_same_v<T, cli::HelpCommand>) {
                std::fputs(cli::usage().c_str(), stdout);
                return 0;
            } else if constexpr (std::is_same_v<T, cli::VersionCommand>) {
                std::printf("kvmlet %s\n", KVMLET_VERSION);
                return 0;
            } else if constexpr (std::is_same_v<T, cli::RunHelpCommand>) {
                std::fputs(cli::run_help().c_str(), stdout);
                return 0;
            } else if constexpr (std::is_same_v<T, cli::FirecrackerHelpCommand>) {
                std::fputs(cli::firecracker_help().c_str(), stdout);
                return 0;
            } else if constexpr (std::is_same_v<T, cli::FirecrackerVersionCommand>) {
                std::fputs(cli::firecracker_version_text().c_str(), stdout);
                return 0;
            } else if constexpr (std::is_same_v<T, cli::FirecrackerCommand>) {
                security::set_process_mode(c.options.seccomp);
                return static_cast<int>(run_firecracker(c.options));
            } else {
                security::set_process_mode(c.seccomp);
                if (c.config.verbose) log::set_level(log::Level::debug);
                return static_cast<int>(run(c.config));
            }
        },
        command);
}

}  // namespace
}  // namespace kvmlet

int main(int argc, char** argv) {
    using namespace kvmlet;
    try {
        ignore_broken_pipes();
        return main_inner(argc, argv);
    } catch (UsageError const& e) {
        log::error("{}", e.what());
        if (firecracker_syntax)
            std::fputs("See firecracker --help.\n", stderr);
        else
            std::fputs(cli::usage().c_str(), stderr);
        return static_cast<int>(ExitStatus::usage_error);
    } catch (Error const& e) {
        report_fatal(e.what());
        return static_cast<int>(e.status());
    } catch (std::exception const& e) {
        report_fatal(e.what());
        return static_cast<int>(ExitStatus::setup_error);
    }
}
