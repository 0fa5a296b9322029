#include "vmm/cli/host_memory.hpp"

#include <sys/sysinfo.h>

#include "vmm/base/error.hpp"

namespace kvmlet::cli {

// sysinfo's totalram is /proc/meminfo's MemTotal (both are the kernel's totalram_pages), in one
// system call: reading and parsing the file through iostreams was 5% of a tiny guest's user-space
// instructions from exec to exit (callgrind), and a jail's chroot need not have /proc.
std::uint64_t host_memory_bytes() {
    struct sysinfo info {};
    if (::sysinfo(&info) != 0) throw system_error("sysinfo");
    return host_memory_bytes(info.totalram, info.mem_unit);
}

std::uint64_t host_memory_bytes(std::uint64_t total_units, std::uint32_t unit_bytes) {
    if (total_units == 0 || unit_bytes == 0 || total_units > UINT64_MAX / unit_bytes)
        throw Error(
            fmt::format("sysinfo: host RAM of {} units of {} bytes is not usable", total_units, unit_bytes));
    return total_units * unit_bytes;
}

}  // namespace kvmlet::cli
