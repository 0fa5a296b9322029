#pragma once
// Time since this process started, for the boot timer and later the timeline. The start is taken
// by a static initializer, before main(); CPU time comes from CLOCK_PROCESS_CPUTIME_ID, which
// counts from exec.
#include <cstdint>

namespace kvmlet {

struct ProcessTimes {
    std::uint64_t wall_us;
    std::uint64_t cpu_us;
};

ProcessTimes since_process_start() noexcept;

}  // namespace kvmlet
