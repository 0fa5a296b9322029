#include "vmm/base/process_clock.hpp"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace kvmlet {
namespace {

std::uint64_t read_us(clockid_t clock) noexcept {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

// Reads a small /proc file whole into `buffer`, NUL-terminated; false when it cannot.
template <std::size_t N>
bool read_proc(char const* path, char (&buffer)[N]) noexcept {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = ::read(fd, buffer, N - 1);
    ::close(fd);
    if (n <= 0) return false;
    buffer[n] = '\0';
    return true;
}

// proc(5): field 22 of /proc/self/stat, starttime, in clock ticks since boot (CLOCK_BOOTTIME).
// The fields after the command name (field 2, in parentheses, may hold anything) are numbers.
std::optional<std::uint64_t> start_ticks() noexcept {
    char buffer[1024];
    if (!read_proc("/proc/self/stat", buffer)) return std::nullopt;
    char const* p = std::strrchr(buffer, ')');
    if (!p) return std::nullopt;
    // p is at the ')' ending field 2; each space found moves to the start of the next field.
    for (int field = 3; field <= 22 && p; ++field) p = std::strchr(p + 1, ' ');
    if (!p) return std::nullopt;
    return std::strtoull(p + 1, nullptr, 10);
}

constexpr std::uint64_t max_before_main_us = 10'000'000;

// proc(5) /proc/self/schedstat: time on a CPU and time waiting for one, in ns. Their sum is a lower
// bound of the time since exec (it leaves out sleeping), but a fine-grained one.
std::optional<std::uint64_t> scheduled_us() noexcept {
    char buffer[128];
    if (!read_proc("/proc/self/schedstat", buffer)) return std::nullopt;
    char* end = nullptr;
    std::uint64_t on_cpu = std::strtoull(buffer, &end, 10);
    std::uint64_t waiting = std::strtoull(end, nullptr, 10);
    return (on_cpu + waiting) / 1000u;
}

std::uint64_t g_start_wall_us = 0;
std::uint64_t g_resolution_us = 1;

// Runs before main() and before other static initializers. The start is the exec as the kernel
// recorded it, so the time spent before main() (dynamic loading, static initialisers) counts.
__attribute__((constructor(101))) void record_process_start() noexcept {
    std::uint64_t now_mono = read_us(CLOCK_MONOTONIC);
    std::uint64_t now_boot = read_us(CLOCK_BOOTTIME);
    g_start_wall_us = now_mono;
    long hz = ::sysconf(_SC_CLK_TCK);
    auto ticks = start_ticks();
    if (!ticks || hz <= 0) return;
    std::uint64_t tick_us = 1'000'000u / static_cast<std::uint64_t>(hz);
    std::uint64_t start_boot = *ticks * tick_us;  // floored to a tick: up to one tick early
    std::uint64_t before_main = now_boot > start_boot ? now_boot - start_boot : 0;
    // Within that tick, the scheduler's accounting narrows it down.
    if (auto scheduled = scheduled_us())
        before_main = std::clamp(*scheduled, before_main > tick_us ? before_main - tick_us : 0, before_main);
    // A constructor runs milliseconds after exec; anything else is a misreading.
    if (before_main > now_mono || before_main > max_before_main_us) return;
    g_start_wall_us = now_mono - before_main;
    g_resolution_us = tick_us;
}

}  // namespace

ProcessTimes since_process_start() noexcept {
    return ProcessTimes{read_us(CLOCK_MONOTONIC) - g_start_wall_us, read_us(CLOCK_PROCESS_CPUTIME_ID)};
}

std::uint64_t process_start_resolution_us() noexcept {
    return g_resolution_us;
}

}  // namespace kvmlet
