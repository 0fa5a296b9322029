#pragma once
// Files the user names for kvmlet to read or serve (--kernel, --initrd, --disk), opened so that
// no kind of path can make kvmlet wait or misbehave: open(2) on a FIFO blocks until a writer
// comes (and SIGTERM, which kvmlet handles, cannot end that wait), a device node may act on being
// opened, and neither a directory nor a socket is an image. All of them are refused by kind.
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "vmm/base/unique_fd.hpp"

namespace kvmlet {

enum class InputKinds {
    regular_file,                  // kernel, initrd
    regular_file_or_block_device,  // disk images
};

// Opens `path` with `flags` (O_RDONLY or O_RDWR; O_CLOEXEC is added) without ever blocking. The
// kind is checked with stat(2) before the path is opened and again on the open file (the path may
// have changed in between); the open is O_NONBLOCK, cleared before returning. A kind outside
// `accepted` throws Error "CONTEXT: not a regular file (a FIFO)"; a failed call throws
// system_error(CONTEXT), so CONTEXT names the option and the path ("kernel: /tmp/x").
UniqueFd open_input_file(std::filesystem::path const& path, int flags, InputKinds accepted,
                         std::string const& context);

// The check open_input_file makes before opening, alone (stat(2) only): for reporting a wrong
// kind early, before anything else is set up. Throws as open_input_file does.
void check_input_kind(std::filesystem::path const& path, InputKinds accepted, std::string const& context);

// What a stat(2) mode says the file is, for error messages: "a FIFO", "a directory", ...
std::string_view describe_file_kind(mode_t mode) noexcept;

}  // namespace kvmlet
