#include "vmm/snapshot/memory_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "vmm/base/error.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet::snapshot {
namespace {

constexpr std::uint64_t page_size = 4096;

bool zero_page(std::byte const* page) noexcept {
    std::uint64_t words[page_size / 8];
    std::memcpy(words, page, page_size);
    std::uint64_t any = 0;
    for (auto w : words) any |= w;
    return any == 0;
}

class Writer {
public:
    Writer(int fd, std::string const& path) : fd_(fd), path_(path) {}

    // The non-zero pages of host[0, length), written at file offset `at` onward.
    void copy(std::byte const* host, std::uint64_t length, std::uint64_t at) {
        std::uint64_t run_start = 0, run_length = 0;
        for (std::uint64_t offset = 0; offset < length; offset += page_size) {
            if (!zero_page(host + offset)) {
                if (run_length == 0) run_start = offset;
                run_length += page_size;
                continue;
            }
            flush(host + run_start, run_length, at + run_start);
            run_length = 0;
        }
        flush(host + run_start, run_length, at + run_start);
    }
    std::uint64_t written() const noexcept { return written_; }

private:
    void flush(std::byte const* data, std::uint64_t length, std::uint64_t at) {
        while (length > 0) {
            ssize_t n = ::pwrite(fd_, data, static_cast<std::size_t>(length), static_cast<off_t>(at));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) throw system_error(fmt::format("memory file {}: write", path_));
            auto done = static_cast<std::uint64_t>(n);
            data += done, length -= done, at += done, written_ += done;
        }
    }

    int fd_;
    std::string const& path_;
    std::uint64_t written_ = 0;
};

// The next extent of data in RAM's memfd at or after `offset` before `end`, as [start, stop): a
// memfd's holes were never written and read as zeros, so only its data needs looking at.
std::optional<std::pair<std::uint64_t, std::uint64_t>> next_data(int memfd, std::uint64_t offset,
                                                                 std::uint64_t end) {
    off_t start = ::lseek(memfd, static_cast<off_t>(offset), SEEK_DATA);
    if (start < 0 || static_cast<std::uint64_t>(start) >= end) return std::nullopt;
    off_t stop = ::lseek(memfd, start, SEEK_HOLE);
    auto stop_at = stop < 0 ? end : std::min(end, static_cast<std::uint64_t>(stop));
    return std::pair{static_cast<std::uint64_t>(start), stop_at};
}

}  // namespace

MemoryFileStats write_memory_file(GuestMemory const& memory, std::string const& path) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) throw system_error(fmt::format("memory file {}: cannot create it", path));
    MemoryFileStats stats;
    stats.size = memory.total_size();
    if (::ftruncate(fd.get(), static_cast<off_t>(stats.size)) != 0)
        throw system_error(fmt::format("memory file {}: cannot size it", path));
    Writer writer(fd.get(), path);
    std::uint64_t at = 0;  // the region's offset in the output file
    for (auto const& region : memory.regions()) {
        if (memory.private_file()) {
            writer.copy(region.host, region.size, at);
        } else {
            std::uint64_t const end = region.file_offset + region.size;
            for (auto extent = next_data(memory.memfd(), region.file_offset, end); extent;
                 extent = next_data(memory.memfd(), extent->second, end)) {
                // Extents are page-aligned in a memfd (tmpfs allocates whole pages).
                std::uint64_t const offset = extent->first - region.file_offset;
                writer.copy(region.host + offset, extent->second - extent->first, at + offset);
            }
        }
        at += region.size;
    }
    if (::fsync(fd.get()) != 0) throw system_error(fmt::format("memory file {}: fsync", path));
    stats.written_bytes = writer.written();
    return stats;
}

}  // namespace kvmlet::snapshot
