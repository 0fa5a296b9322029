#pragma once
// Signals to the kvmlet process, handled for the whole run rather than per machine: SIGINT,
// SIGTERM and SIGHUP ask kvmlet to stop, SIGUSR2 asks the running machine for its vCPUs'
// registers. A handler records the signal and rings an eventfd that the machine's event loop
// watches, so a signal that lands while no event loop listens (a machine being built, stopping,
// or rebuilt after a reset) is neither lost nor fatal. asio's signal_set could not give that: it
// puts SIG_DFL back when destroyed, and a stop signal that came while the machine was already
// stopping for another reason (a reset with --on-reboot restart) was swallowed.
#include "vmm/vcpu/stop_request.hpp"

namespace kvmlet {

class ProcessSignals {
public:
    // Installs the handlers. One instance per process: a second one throws Error.
    ProcessSignals();
    ~ProcessSignals();  // puts back the handlers that were there before
    ProcessSignals(ProcessSignals const&) = delete;
    ProcessSignals& operator=(ProcessSignals const&) = delete;

    // The first stop signal received, 0 while none came. Once set it stays set.
    int stop_signal() const noexcept;
    // The stop as a machine reports it ("received Terminated").
    StopReason stop_reason() const;
    // Readable from the first stop signal on, for good: every later event loop sees it at once.
    int stop_fd() const noexcept;
    // Readable from the second stop signal on, for good: "stop now", where the first one only
    // asked the guest to shut down (MachineConfig::stop_grace).
    int again_fd() const noexcept;
    // Readable after a SIGUSR2; take_dump_request() reads it back to unreadable.
    int dump_fd() const noexcept;
    bool take_dump_request() noexcept;
};

// Ignores SIGPIPE for the whole process, for good: a write to a pipe whose reader has gone
// (`kvmlet run ... | head`) then fails with EPIPE, which the console and the log drop, instead of
// killing kvmlet mid-run (status 141, the terminal left raw). Call first thing in main().
void ignore_broken_pipes();

}  // namespace kvmlet
