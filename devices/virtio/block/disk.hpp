#pragma once
// The host side of a virtio-blk disk: a raw image file or block device, opened and locked once
// at setup, then read and written at byte offsets. Setup failures throw Error; I/O failures are
// guest-reachable and come back as values (STYLE.md §4).
//
// Not thread-safe: one disk belongs to one BlockDevice, whose requests run on one worker thread
// (the bounce buffer below is shared by all requests).
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "devices/virtio/rate_limiter.hpp"
#include "vmm/base/result.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet {

enum class CacheMode {
    writeback,  // through the host page cache; FLUSH is fdatasync
    none,       // O_DIRECT: the host page cache is bypassed (FLUSH still reaches the device cache)
};

// What is wrong with a disk id (the GET_ID string), or nullopt: at most 20 bytes
// (VIRTIO_BLK_ID_BYTES), printable ASCII without spaces. The command line and the device both
// check with this one function.
std::optional<std::string> disk_id_problem(std::string_view id);

struct DiskConfig {
    std::string path{};
    bool read_only = false;
    std::string id{};  // the GET_ID string: printable ASCII, at most 20 bytes (VIRTIO_BLK_ID_BYTES)
    CacheMode cache = CacheMode::writeback;
    // The drive's rate limits when the machine starts (the BlockDevice's from then on; none by
    // default). The disk itself does not use them.
    virtio::RateLimiterConfig rate_limiter{};
};

class Disk {
public:
    // Opens, locks (flock: shared when read-only, exclusive otherwise) and sizes the image.
    // Throws Error ("disk PATH: in use by another process", ...) or UsageError for a bad id.
    explicit Disk(DiskConfig config);
    Disk(Disk&&) noexcept;
    Disk& operator=(Disk&&) noexcept;
    Disk(Disk const&) = delete;
    Disk& operator=(Disk const&) = delete;
    ~Disk();

    DiskConfig const& config() const noexcept { return config_; }
    bool read_only() const noexcept { return config_.read_only; }
    std::uint64_t size() const noexcept { return size_; }  // bytes
    // The smallest unit of I/O the guest should use: 512, or the O_DIRECT alignment if larger.
    std::uint32_t block_size() const noexcept;
    // Requests that went through the aligned bounce buffer (cache=none only).
    std::uint64_t bounced() const noexcept { return bounced_; }

    // Transfers the whole of `iov` at `offset`; a short transfer is an error. `iov` is used as
    // scratch space: its entries are advanced as the transfer proceeds.
    Result<void> read(std::uint64_t offset, std::span<iovec> iov) noexcept;
    Result<void> write(std::uint64_t offset, std::span<iovec> iov) noexcept;
    Result<void> flush() noexcept;
    // Deallocates the range if the file system can; succeeds without doing anything otherwise.
    Result<void> discard(std::uint64_t offset, std::uint64_t len) noexcept;
    // Makes the range read as zeros: with `may_unmap` by punching a hole, otherwise (or if that
    // is unsupported) with FALLOC_FL_ZERO_RANGE, and failing that by writing zeros.
    Result<void> write_zeroes(std::uint64_t offset, std::uint64_t len, bool may_unmap) noexcept;

private:
    struct FreeDeleter {
        void operator()(std::byte* p) const noexcept;
    };
    enum class Direction { read, write };

    ssize_t io(Direction dir, iovec const* iov, int count, off_t pos) const noexcept;
    Result<void> transfer(Direction dir, std::uint64_t offset, std::span<iovec> iov) noexcept;
    Result<void> bounce(Direction dir, std::uint64_t offset, std::span<iovec> iov) noexcept;
    Result<void> bounce_chunk(Direction dir, std::uint64_t offset, std::span<iovec>& iov,
                              std::size_t len) noexcept;
    bool aligned(std::uint64_t offset, std::span<iovec const> iov) const noexcept;
    Result<void> write_zeros_by_hand(std::uint64_t offset, std::uint64_t len) noexcept;
    Result<void> failure(char const* what, std::uint64_t offset, int err) const;

    DiskConfig config_;
    UniqueFd fd_;
    std::uint64_t size_ = 0;
    std::uint32_t mem_align_ = 1;     // O_DIRECT buffer address alignment (1: buffered I/O)
    std::uint32_t offset_align_ = 1;  // O_DIRECT offset and length alignment
    std::unique_ptr<std::byte, FreeDeleter> bounce_;
    std::size_t bounce_bytes_ = 0;
    std::uint64_t bounced_ = 0;
};

}  // namespace kvmlet
