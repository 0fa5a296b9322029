// kvmlet: the command-line entry point. Parses the command line, builds the machine, runs it, and
// turns what happened into one of the documented exit statuses (see `kvmlet run --help`).
#include <unistd.h>

#include <cstdio>
#include <span>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/timeline.hpp"
#include "vmm/cli/command_line.hpp"
#include "vmm/cli/help_text.hpp"
#include "vmm/cli/host_memory.hpp"
#include "vmm/event/process_signals.hpp"
#include "vmm/event/terminal.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/machine/input_files.hpp"
#include "vmm/machine/machine.hpp"
#include "vmm/machine/timeline_report.hpp"
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

ExitStatus run(MachineConfig config) {
    check_input_files(config);  // before /dev/kvm: a wrong file is the user's error on any host
    ProcessSignals signals;
    KvmSystem kvm;
    if (!config.host_compat) {
        config.host_compat = detect_host_compat();
        if (*config.host_compat != HostCompat::none)
            log::info(
                "host-compat: {} host detected, compatibility mode on (--host-compat none turns it off)",
                name(*config.host_compat));
        else
            log::debug("host-compat: none (no kvm_pvm module: KVM runs guests unmodified)");
    }
    RawTerminal terminal(STDIN_FILENO);
    StopReason reason = run_machines(config, kvm, signals);
    report(reason);
    // After the machine is gone: tearing the VM down is part of what a boot costs.
    finish_timeline(config, reason);
    return exit_status(reason.kind);
}

int main_inner(int argc, char** argv) {
    cli::Command command =
        cli::parse_command_line(std::span<char const* const>(const_cast<char const* const*>(argv) + 1,
                                                             static_cast<std::size_t>(argc - 1)),
                                cli::host_memory_bytes());
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
            } else {
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
        std::fputs(cli::usage().c_str(), stderr);
        return static_cast<int>(ExitStatus::usage_error);
    } catch (Error const& e) {
        log::error("{}", e.what());
        return static_cast<int>(e.status());
    } catch (std::exception const& e) {
        log::error("{}", e.what());
        return static_cast<int>(ExitStatus::setup_error);
    }
}
