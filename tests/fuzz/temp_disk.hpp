#pragma once
// Small scratch disk images for the block fuzz targets: created in $TMPDIR (or /tmp), opened,
// and unlinked at once, so nothing is left behind however the process ends (the open Disk keeps
// the inode alive until exit).
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "devices/virtio/block/disk.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::fuzz {

inline constexpr std::uint64_t image_size = 64 * 1024;

// Opens a fresh zero-filled image with `config` (its path is filled in); nullopt when the host
// cannot (cache=none on a file system without O_DIRECT).
inline std::optional<Disk> temp_disk(DiskConfig config) {
    char const* dir = std::getenv("TMPDIR");
    std::string path = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/kvmlet-fuzz-XXXXXX";
    int const fd = ::mkstemp(path.data());
    if (fd < 0) {
        std::perror("kvmlet fuzz: mkstemp");
        std::abort();
    }
    bool const sized = ::ftruncate(fd, static_cast<off_t>(image_size)) == 0;
    ::close(fd);
    if (!sized) {
        std::perror("kvmlet fuzz: ftruncate");
        ::unlink(path.c_str());
        std::abort();
    }
    config.path = path;
    bool const direct = config.cache == CacheMode::none;
    std::optional<Disk> disk;
    try {
        disk.emplace(std::move(config));
    } catch (Error const& e) {
        if (!direct) {
            std::fprintf(stderr, "kvmlet fuzz: %s\n", e.what());
            ::unlink(path.c_str());
            std::abort();
        }
    }
    ::unlink(path.c_str());
    return disk;
}

}  // namespace kvmlet::fuzz
