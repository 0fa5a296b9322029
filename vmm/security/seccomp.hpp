#pragma once
// Each kvmlet thread confines itself once its set-up is done and before it does its job: it drops
// its capabilities, sets no_new_privs and loads the seccomp filter of its kind (the allow-lists
// are in seccomp_filters.cpp). The mode is chosen once for the process (--seccomp, --no-seccomp).
#include <linux/filter.h>

#include <future>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace kvmlet::security {

enum class SeccompMode {
    kill,  // a forbidden system call ends kvmlet with a line naming it and the thread kind
    log,   // a forbidden system call is allowed and written to the audit log (SECCOMP_RET_LOG)
    off,   // no filter (capabilities are still dropped)
};

// Every kind of thread kvmlet runs; each has one allow-list.
enum class ThreadKind {
    vmm,      // the main thread: the event loop (Machine::run)
    vcpu,     // KVM_RUN and the device emulation of its exits
    worker,   // a disk's worker: its queue's requests, blocking file I/O
    api,      // the HTTP API on its Unix socket
    metrics,  // the periodic metrics writer
    sink,     // FdSink's writer: console output held for a slow stdout
};

std::string_view name(ThreadKind kind) noexcept;
std::optional<ThreadKind> thread_kind(std::string_view name) noexcept;

// Exit status of a kvmlet that made a forbidden system call in kill mode (Firecracker's 148).
inline constexpr int forbidden_syscall_status = 148;

// Sets the mode for the whole process; call once from main(), before any thread starts. Until it
// is called, confine() does nothing (unit tests run threads unconfined). In kill mode it installs
// the SIGSYS handler that reports the forbidden call. Reads KVMLET_SECCOMP_TEST=<kind>: a thread of
// that kind makes a forbidden call (personality(2)) right after loading its filter, so tests can
// see the filters bite.
void set_process_mode(SeccompMode mode);
SeccompMode process_mode() noexcept;

struct Confinement {
    ThreadKind kind;
    // The VMM thread of `--on-reboot restart` builds the next machine itself, and starts its
    // vCPU, worker and sink threads, which inherit its filter: its list is widened by the set-up's
    // system calls and theirs (docs/security.md).
    bool builds_machines = false;
    // Capabilities kept (the same restart VMM thread keeps CAP_NET_ADMIN to create TAPs again).
    bool keep_net_admin = false;
};

// A kind's filter compiled ahead of the thread that loads it (libseccomp's BPF program), so that
// a thread that must start fast does not compile its own: the vCPUs, whose filter would otherwise
// be compiled between their thread's start and the first KVM_RUN (0.5 M instructions, 3.4 ms in
// the emulated KVM host, docs/boot-time.md), and once per vCPU.
using CompiledFilter = std::vector<sock_filter>;
// Starts compiling `confinement`'s filter on a thread of its own; the result is empty when the
// process mode is off or not set, or the compile failed (confine() then compiles as before).
std::shared_future<CompiledFilter> compile_ahead(Confinement const& confinement);

// Confines the calling thread (once: a second call on the same thread does nothing). A failure
// to confine is a set-up error: kvmlet says so on stderr and exits with status 1. With
// `compiled` (from compile_ahead() for the same confinement, not empty) the filter is loaded as
// it is, otherwise compiled here.
void confine(Confinement const& confinement, CompiledFilter const* compiled = nullptr) noexcept;
inline void confine(ThreadKind kind) noexcept {
    confine(Confinement{.kind = kind});
}

}  // namespace kvmlet::security
