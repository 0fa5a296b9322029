#include "firmware/x86_64/command_line.hpp"

#include <fmt/format.h>

#include <cstring>
#include <vector>

#include "firmware/x86_64/layout.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::x86_64 {

void check_cmdline(std::string_view cmdline, std::uint64_t kernel_max) {
    if (cmdline.size() > kernel_max)
        throw Error(
            fmt::format("cmdline: {} bytes, the kernel accepts at most {}", cmdline.size(), kernel_max));
    if (cmdline.size() >= cmdline_capacity)
        throw Error(
            fmt::format("cmdline: {} bytes, kvmlet passes at most {}", cmdline.size(), cmdline_capacity - 1));
    if (cmdline.find('\0') != std::string_view::npos)
        throw Error(fmt::format("cmdline: a NUL byte at offset {}", cmdline.find('\0')));
}

GuestAddress write_cmdline(GuestMemory const& memory, std::string_view cmdline, std::uint64_t kernel_max) {
    check_cmdline(cmdline, kernel_max);
    std::vector<std::byte> bytes(cmdline.size() + 1);  // zero-filled: the last byte is the NUL
    std::memcpy(bytes.data(), cmdline.data(), cmdline.size());
    if (!memory.write_bytes(cmdline_start, bytes))
        throw Error(fmt::format("cmdline: {:#x} is not in guest RAM", cmdline_start.value));
    return cmdline_start;
}

}  // namespace kvmlet::x86_64
