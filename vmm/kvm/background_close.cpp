#include "vmm/kvm/background_close.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstddef>

namespace kvmlet {
namespace {

constexpr std::size_t max_fds = 32;
constexpr std::size_t stack_size = 64 * 1024;

struct CloserArgs {
    std::array<int, max_fds> fds{};  // ascending; the release pipe's read end among them
    std::size_t count = 0;
    int release = -1;  // read until its end: the caller has closed its copies of the VM's
};

// A system call without errno (errno is thread-local, and the closer has no thread of its own).
long raw_syscall3(long number, long a, long b, long c) noexcept {
    long result;
    asm volatile("syscall" : "=a"(result) : "a"(number), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return result;
}

int closer(void* raw) noexcept {
    auto const* args = static_cast<CloserArgs const*>(raw);
    long next = 0;
    for (std::size_t i = 0; i < args->count; ++i) {
        if (args->fds[i] > next) raw_syscall3(SYS_close_range, next, args->fds[i] - 1, 0);
        next = args->fds[i] + 1;
    }
    raw_syscall3(SYS_close_range, next, ~0U, 0);
    char byte;
    for (;;) {  // 0 at the pipe's end; -EINTR again; any other error ends the wait too
        long got = raw_syscall3(SYS_read, args->release, reinterpret_cast<long>(&byte), 1);
        if (got != -EINTR && got <= 0) break;
    }
    for (std::size_t i = 0; i < args->count; ++i) raw_syscall3(SYS_close, args->fds[i], 0, 0);
    for (;;) raw_syscall3(SYS_exit, 0, 0, 0);
}

}  // namespace

UniqueFd close_in_background(std::span<int const> vm_fds) noexcept {
    if (vm_fds.empty() || vm_fds.size() >= max_fds) return {};
    int release[2];
    if (::pipe2(release, O_CLOEXEC) != 0) return {};
    UniqueFd read_end(release[0]), write_end(release[1]);
    // The stack (and the arguments at its base) stay mapped: the closer may outlive everything
    // the caller frees next, and this memory is the mm's until the closer exits.
    void* stack = ::mmap(nullptr, stack_size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (stack == MAP_FAILED) return {};
    auto* args = new (stack) CloserArgs;
    std::copy(vm_fds.begin(), vm_fds.end(), args->fds.begin());
    args->fds[vm_fds.size()] = read_end.get();
    args->count = vm_fds.size() + 1;
    args->release = read_end.get();
    std::sort(args->fds.begin(), args->fds.begin() + static_cast<std::ptrdiff_t>(args->count));
    // Nobody waits for a closer: SA_NOCLDWAIT has the kernel reap it (kvmlet has no other
    // children; a machine restarted by --on-reboot restart makes one closer per machine).
    struct sigaction no_zombies {};
    no_zombies.sa_handler = SIG_DFL;
    no_zombies.sa_flags = SA_NOCLDWAIT;
    ::sigaction(SIGCHLD, &no_zombies, nullptr);
    int pid = ::clone(closer, static_cast<std::byte*>(stack) + stack_size, closer_clone_flags, args);
    if (pid < 0) {
        ::munmap(stack, stack_size);
        return {};
    }
    return write_end;  // the read end is the closer's now; ours closes here
}

}  // namespace kvmlet
