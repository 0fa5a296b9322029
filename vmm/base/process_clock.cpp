#include "vmm/base/process_clock.hpp"

#include <time.h>

namespace kvmlet {
namespace {

std::uint64_t read_us(clockid_t clock) noexcept {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

std::uint64_t g_start_wall_us = 0;

// Runs before main() and before other static initializers.
__attribute__((constructor(101))) void record_process_start() noexcept {
    g_start_wall_us = read_us(CLOCK_MONOTONIC);
}

}  // namespace

ProcessTimes since_process_start() noexcept {
    return ProcessTimes{read_us(CLOCK_MONOTONIC) - g_start_wall_us, read_us(CLOCK_PROCESS_CPUTIME_ID)};
}

}  // namespace kvmlet
