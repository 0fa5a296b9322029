#include "vmm/snapshot/memory_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

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
    // host[0, length) at `at`, zero pages too (a Diff's dirty pages).
    void copy_all(std::byte const* host, std::uint64_t length, std::uint64_t at) { flush(host, length, at); }
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

// Which pages of a private file mapping [host, host + length) may hold non-zero bytes: those the
// guest wrote (copy-on-write: present, not file pages, or swapped out; /proc/self/pagemap, see
// the kernel's admin-guide/mm/pagemap.rst) and those whose file offset is data in the file; the rest
// read as zeros from a hole. Nullopt when pagemap cannot be read (no /proc, as in a jail): then
// every page is looked at.
constexpr std::uint64_t pagemap_present = 1ULL << 63;
constexpr std::uint64_t pagemap_swapped = 1ULL << 62;
constexpr std::uint64_t pagemap_file = 1ULL << 61;

std::optional<std::vector<bool>> candidate_pages(std::byte const* host, std::uint64_t length, int file,
                                                 std::uint64_t file_offset) {
    UniqueFd pagemap(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
    if (!pagemap.valid()) return std::nullopt;
    std::uint64_t const pages = length / page_size;
    std::vector<std::uint64_t> entries(static_cast<std::size_t>(pages));
    auto const first = reinterpret_cast<std::uintptr_t>(host) / page_size * sizeof(std::uint64_t);
    std::size_t const bytes = entries.size() * sizeof(std::uint64_t);
    if (::pread(pagemap.get(), entries.data(), bytes, static_cast<off_t>(first)) !=
        static_cast<ssize_t>(bytes))
        return std::nullopt;
    std::vector<bool> candidates(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i)
        candidates[i] = (entries[i] & pagemap_swapped) != 0 ||
                        ((entries[i] & pagemap_present) != 0 && (entries[i] & pagemap_file) == 0);
    for (auto extent = next_data(file, file_offset, file_offset + length); extent;
         extent = next_data(file, extent->second, file_offset + length))
        for (std::uint64_t at = extent->first / page_size * page_size; at < extent->second; at += page_size)
            candidates[static_cast<std::size_t>((std::max(at, file_offset) - file_offset) / page_size)] =
                true;
    return candidates;
}

// A restored guest's RAM is a private mapping of its memory file: truncating that file under it
// would take away every page the guest has not written (SIGBUS on the next touch).
void refuse_own_backing(GuestMemory const& memory, std::string const& path) {
    struct stat target {
    }, backing{};
    if (memory.private_file() && ::stat(path.c_str(), &target) == 0 &&
        ::fstat(memory.memfd(), &backing) == 0 && target.st_dev == backing.st_dev &&
        target.st_ino == backing.st_ino)
        throw Error(fmt::format(
            "memory file {}: this microVM's RAM is mapped from it; write the snapshot elsewhere", path));
}

// Full: the pages of a region that may hold data, their zero pages left out.
void write_full_region(Writer& writer, GuestMemory const& memory, GuestRegion const& region,
                       std::uint64_t at) {
    if (memory.private_file()) {
        auto candidates = candidate_pages(region.host, region.size, memory.memfd(), region.file_offset);
        std::size_t const pages = static_cast<std::size_t>(region.size / page_size);
        for (std::size_t page = 0; page < pages;) {  // runs of candidate pages
            std::size_t end = page;
            while (end < pages && (!candidates || (*candidates)[end])) ++end;
            if (end > page)
                writer.copy(region.host + page * page_size, (end - page) * page_size, at + page * page_size);
            page = end + 1;
        }
        return;
    }
    std::uint64_t const end = region.file_offset + region.size;
    for (auto extent = next_data(memory.memfd(), region.file_offset, end); extent;
         extent = next_data(memory.memfd(), extent->second, end)) {
        // Extents are page-aligned in a memfd (tmpfs allocates whole pages).
        std::uint64_t const offset = extent->first - region.file_offset;
        writer.copy(region.host + offset, extent->second - extent->first, at + offset);
    }
}

// Diff: every dirty page of region `index`, as it is (a page the guest zeroed must replace the
// base's), in runs.
void write_diff_region(Writer& writer, DirtyPages const& diff, std::size_t index, GuestRegion const& region,
                       std::uint64_t at) {
    std::uint64_t const pages = region.size / page_size;
    for (std::uint64_t page = 0; page < pages;) {
        if (!diff.dirty(index, page)) {
            ++page;
            continue;
        }
        std::uint64_t end = page;
        while (end < pages && diff.dirty(index, end)) ++end;
        writer.copy_all(region.host + page * page_size, (end - page) * page_size, at + page * page_size);
        page = end;
    }
}

struct FileInfo {
    UniqueFd fd;
    struct stat st;
};

FileInfo open_memory_file(std::string const& path, int flags) {
    FileInfo file{UniqueFd(::open(path.c_str(), flags | O_CLOEXEC)), {}};
    if (!file.fd.valid()) throw system_error(fmt::format("memory file {}: cannot open it", path));
    if (::fstat(file.fd.get(), &file.st) != 0) throw system_error(fmt::format("memory file {}: fstat", path));
    if (!S_ISREG(file.st.st_mode)) throw Error(fmt::format("memory file {}: not a regular file", path));
    return file;
}

}  // namespace

MemoryFileStats write_memory_file(GuestMemory const& memory, std::string const& path,
                                  DirtyPages const* diff) {
    refuse_own_backing(memory, path);
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) throw system_error(fmt::format("memory file {}: cannot create it", path));
    MemoryFileStats stats;
    stats.size = memory.total_size();
    if (::ftruncate(fd.get(), static_cast<off_t>(stats.size)) != 0)
        throw system_error(fmt::format("memory file {}: cannot size it", path));
    Writer writer(fd.get(), path);
    std::uint64_t at = 0;  // the region's offset in the output file
    auto const regions = memory.regions();
    for (std::size_t i = 0; i < regions.size(); ++i) {
        if (diff)
            write_diff_region(writer, *diff, i, regions[i], at);
        else
            write_full_region(writer, memory, regions[i], at);
        at += regions[i].size;
    }
    if (::fsync(fd.get()) != 0) throw system_error(fmt::format("memory file {}: fsync", path));
    stats.written_bytes = writer.written();
    return stats;
}

std::uint64_t merge_memory_file(std::string const& base, std::string const& diff) {
    FileInfo from = open_memory_file(diff, O_RDONLY);
    FileInfo to = open_memory_file(base, O_WRONLY);
    if (from.st.st_dev == to.st.st_dev && from.st.st_ino == to.st.st_ino)
        throw Error(fmt::format("memory files {} and {} are the same file", base, diff));
    if (from.st.st_size != to.st.st_size)
        throw Error(fmt::format("memory file {}: {} bytes, but the base {} has {}: not a Diff of this guest",
                                diff, from.st.st_size, base, to.st.st_size));
    auto const size = static_cast<std::uint64_t>(from.st.st_size);
    Writer writer(to.fd.get(), base);
    std::vector<std::byte> buffer(1 << 20);
    for (auto extent = next_data(from.fd.get(), 0, size); extent;
         extent = next_data(from.fd.get(), extent->second, size)) {
        for (std::uint64_t at = extent->first; at < extent->second;) {
            auto const want =
                static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), extent->second - at));
            ssize_t const n = ::pread(from.fd.get(), buffer.data(), want, static_cast<off_t>(at));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) throw system_error(fmt::format("memory file {}: read", diff));
            writer.copy_all(buffer.data(), static_cast<std::uint64_t>(n), at);
            at += static_cast<std::uint64_t>(n);
        }
    }
    if (::fsync(to.fd.get()) != 0) throw system_error(fmt::format("memory file {}: fsync", base));
    return writer.written();
}

}  // namespace kvmlet::snapshot
