#include "vmm/security/seccomp.hpp"

#include <linux/capability.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "vmm/security/capabilities.hpp"
#include "vmm/security/seccomp_filters.hpp"

namespace kvmlet::security {
namespace {

constexpr std::array<std::string_view, 6> kind_names{"vmm", "vcpu", "worker", "api", "metrics", "sink"};

// Set by set_process_mode() before any thread exists; read-only afterwards.
std::atomic<bool> mode_set{false};
SeccompMode mode = SeccompMode::off;
std::optional<ThreadKind> test_kind;

// The SIGSYS handler's table: system call names by number, resolved before any filter exists
// (libseccomp allocates; the handler may not). Numbers past the table are shown without a name.
constexpr std::size_t named_syscalls = 512;
std::array<char const*, named_syscalls> syscall_names{};

// The calling thread's kind once it is confined: the handler names it; confine() runs once.
thread_local char const* confined_as = nullptr;

// Async-signal-safe line building: no allocation, no locale, no stdio.
struct Line {
    std::array<char, 192> text{};
    std::size_t size = 0;

    void add(char const* s) noexcept {
        while (s != nullptr && *s != '\0' && size < text.size()) text[size++] = *s++;
    }
    void add(long n) noexcept {
        char digits[24];
        std::size_t count = 0;
        unsigned long u = n < 0 ? 0ul - static_cast<unsigned long>(n) : static_cast<unsigned long>(n);
        do {
            digits[count++] = static_cast<char>('0' + u % 10);
            u /= 10;
        } while (u != 0 && count < sizeof digits);
        if (n < 0) add("-");
        while (count > 0 && size < text.size()) text[size++] = digits[--count];
    }
};

void on_forbidden_syscall(int, siginfo_t* info, void*) {
    Line line;
    line.add("kvmlet: seccomp: thread ");
    line.add(confined_as != nullptr ? confined_as : "?");
    line.add(" made a forbidden system call ");
    int const number = info->si_syscall;
    line.add(static_cast<long>(number));
    if (number >= 0 && static_cast<std::size_t>(number) < named_syscalls &&
        syscall_names[static_cast<std::size_t>(number)] != nullptr) {
        line.add(" (");
        line.add(syscall_names[static_cast<std::size_t>(number)]);
        line.add(")");
    }
    line.add("\n");
    [[maybe_unused]] ssize_t const n = ::write(STDERR_FILENO, line.text.data(), line.size);
    ::_exit(forbidden_syscall_status);
}

void install_sigsys_handler() {
    for (std::size_t nr = 0; nr < named_syscalls; ++nr)
        syscall_names[nr] = ::seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, static_cast<int>(nr));
    struct sigaction action {};
    action.sa_sigaction = on_forbidden_syscall;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_SIGINFO;
    if (::sigaction(SIGSYS, &action, nullptr) != 0)
        throw std::runtime_error(std::string("seccomp: sigaction(SIGSYS): ") + std::strerror(errno));
}

[[noreturn]] void fail(ThreadKind kind, std::string const& why) noexcept {
    Line line;
    line.add("kvmlet: error: seccomp: cannot confine thread ");
    line.add(name(kind).data());
    line.add(": ");
    line.add(why.c_str());
    line.add("\n");
    [[maybe_unused]] ssize_t const n = ::write(STDERR_FILENO, line.text.data(), line.size);
    ::_exit(1);
}

// The kind's rules in a libseccomp context; an error message, or "" and `ctx` to release.
std::string build_filter(Confinement const& confinement, scmp_filter_ctx& ctx) {
    std::uint32_t const default_action = mode == SeccompMode::log ? SCMP_ACT_LOG : SCMP_ACT_TRAP;
    ctx = ::seccomp_init(default_action);
    if (ctx == nullptr) return "seccomp_init failed";
    std::string error;
    for (SyscallRule const& rule : allow_list(confinement)) {
        int rc = 0;
        auto const nr = static_cast<int>(rule.number);
        if (rule.arg)
            rc = ::seccomp_rule_add(
                ctx, SCMP_ACT_ALLOW, nr, 1,
                scmp_arg_cmp{rule.arg->index, SCMP_CMP_MASKED_EQ, rule.arg->mask, rule.arg->value});
        else
            rc = ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc != 0) {
            error = std::string("rule for system call ") + std::to_string(nr) + ": " + std::strerror(-rc);
            break;
        }
    }
    return error;
}

// The kind's filter, loaded on the calling thread only (no TSYNC: every thread loads its own).
std::string load_filter(Confinement const& confinement) {
    scmp_filter_ctx ctx = nullptr;
    std::string error = build_filter(confinement, ctx);
    // no_new_privs is set by the caller; libseccomp would otherwise set it itself.
    if (error.empty()) {
        if (int const rc = ::seccomp_load(ctx); rc != 0)
            error = std::string("seccomp_load: ") + std::strerror(-rc);
    }
    if (ctx != nullptr) ::seccomp_release(ctx);
    return error;
}

// The program libseccomp would load for `confinement` (seccomp_export_bpf through a memfd), or
// empty on any failure.
CompiledFilter export_filter(Confinement const& confinement) {
    scmp_filter_ctx ctx = nullptr;
    CompiledFilter program;
    if (build_filter(confinement, ctx).empty()) {
        int const fd = ::memfd_create("kvmlet-seccomp", MFD_CLOEXEC);
        if (fd >= 0 && ::seccomp_export_bpf(ctx, fd) == 0) {
            off_t const size = ::lseek(fd, 0, SEEK_END);
            if (size > 0 && size % static_cast<off_t>(sizeof(sock_filter)) == 0) {
                program.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
                auto const bytes = static_cast<std::size_t>(size);
                if (::pread(fd, program.data(), bytes, 0) != size) program.clear();
            }
        }
        if (fd >= 0) ::close(fd);
    }
    if (ctx != nullptr) ::seccomp_release(ctx);
    return program;
}

// Loads a program export_filter() made: what seccomp_load() does with the same context (flags 0:
// no TSYNC, no log flag, as the context's attributes are libseccomp's defaults).
std::string load_compiled(CompiledFilter const& program) {
    if (program.size() > BPF_MAXINSNS) return "compiled filter too long";
    sock_fprog prog{static_cast<unsigned short>(program.size()), const_cast<sock_filter*>(program.data())};
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        return std::string("seccomp(SECCOMP_SET_MODE_FILTER): ") + std::strerror(errno);
    return {};
}

}  // namespace

namespace {

// An empty program, ready at once: the thread to confine compiles its own.
std::shared_future<CompiledFilter> no_compiled_filter() {
    std::promise<CompiledFilter> none;
    none.set_value({});
    return none.get_future().share();
}

}  // namespace

std::shared_future<CompiledFilter> compile_ahead(Confinement const& confinement) {
    if (!mode_set.load(std::memory_order_acquire) || mode == SeccompMode::off) return no_compiled_filter();
    try {
        return std::async(std::launch::async,
                          [confinement] {
                              try {  // Vcpu::run is noexcept: no exception may come out of get()
                                  return export_filter(confinement);
                              } catch (std::exception const&) {
                                  return CompiledFilter{};
                              }
                          })
            .share();
    } catch (std::exception const&) {  // no thread to compile it
        return no_compiled_filter();
    }
}

std::string_view name(ThreadKind kind) noexcept {
    return kind_names[static_cast<std::size_t>(kind)];
}

std::optional<ThreadKind> thread_kind(std::string_view text) noexcept {
    for (std::size_t i = 0; i < kind_names.size(); ++i)
        if (kind_names[i] == text) return static_cast<ThreadKind>(i);
    return std::nullopt;
}

void set_process_mode(SeccompMode chosen) {
    mode = chosen;
    if (char const* test = std::getenv("KVMLET_SECCOMP_TEST")) test_kind = thread_kind(test);
    if (mode == SeccompMode::kill) install_sigsys_handler();
    mode_set.store(true, std::memory_order_release);
}

SeccompMode process_mode() noexcept {
    return mode;
}

void confine(Confinement const& confinement, CompiledFilter const* compiled) noexcept {
    if (!mode_set.load(std::memory_order_acquire) || confined_as != nullptr) return;
    ThreadKind const kind = confinement.kind;
    confined_as = name(kind).data();
    int const net_admin[] = {CAP_NET_ADMIN};
    std::span<int const> const keep =
        confinement.keep_net_admin ? std::span<int const>(net_admin) : std::span<int const>();
    if (std::string why = drop_capabilities(keep); !why.empty()) fail(kind, why);
    if (mode == SeccompMode::off) return;
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        fail(kind, std::string("PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno));
    // The report needs SIGSYS delivered: threads that block every signal (workers, the sink's
    // writer) would otherwise die of the default action, silently.
    sigset_t sigsys;
    sigemptyset(&sigsys);
    sigaddset(&sigsys, SIGSYS);
    ::pthread_sigmask(SIG_UNBLOCK, &sigsys, nullptr);
    try {
        std::string why =
            compiled != nullptr && !compiled->empty() ? load_compiled(*compiled) : load_filter(confinement);
        if (!why.empty()) fail(kind, why);
    } catch (std::exception const& e) {
        fail(kind, e.what());
    }
    if (test_kind == kind) ::syscall(SYS_personality, 0xffffffffUL);  // forbidden everywhere
}

}  // namespace kvmlet::security
