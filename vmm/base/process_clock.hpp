#pragma once
// Time since this process started, for the boot timer and the timeline. The start is the exec,
// from /proc/self/stat (starttime), so time before main() counts. The kernel reports it in clock
// ticks (10 ms at USER_HZ=100), floored; within that tick, the start is placed by the scheduler's
// accounting (/proc/self/schedstat: time on a CPU and waiting for one), which can only place it
// late. So wall times are known to one tick, usually much better.
// Where /proc is unreadable the start is the first static initializer instead. CPU time is
// CLOCK_PROCESS_CPUTIME_ID.
#include <cstdint>
#include <optional>

namespace kvmlet {

struct ProcessTimes {
    std::uint64_t wall_us;
    std::uint64_t cpu_us;
};

ProcessTimes since_process_start() noexcept;
// How precisely the start is known: one clock tick, or 1 µs without /proc.
std::uint64_t process_start_resolution_us() noexcept;

}  // namespace kvmlet
