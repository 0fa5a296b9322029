#include "devices/virtio/block/disk.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>

#include "devices/virtio/block/block_spec.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/input_file.hpp"
#include "vmm/base/log.hpp"

namespace kvmlet {
namespace {

// cache=none copies misaligned requests through a buffer of this size, a chunk at a time.
constexpr std::size_t bounce_size = 256 * 1024;
// Zeros written by hand when the file system cannot zero a range itself; aligned for O_DIRECT.
constexpr std::size_t zero_block_size = 64 * 1024;
alignas(4096) std::byte const zero_block[zero_block_size]{};

void check_id(DiskConfig const& config) {
    if (auto problem = disk_id_problem(config.id))
        throw UsageError(fmt::format("disk {}: id '{}': {}", config.path, config.id, *problem));
}

// O_DIRECT is set on the open file (open_input_file takes only the access mode); where the file
// system cannot do direct I/O, fcntl(F_SETFL) fails with EINVAL as open(2) would.
void bypass_page_cache(int fd, std::string const& path) {
    int const status = ::fcntl(fd, F_GETFL);
    if (status >= 0 && ::fcntl(fd, F_SETFL, status | O_DIRECT) == 0) return;
    if (errno == EINVAL)
        throw Error(
            fmt::format("disk {}: cache=none: the file system does not support O_DIRECT "
                        "(use cache=writeback)",
                        path));
    throw system_error(fmt::format("disk {}: O_DIRECT", path));
}

UniqueFd open_image(DiskConfig const& config) {
    int const access = config.read_only ? O_RDONLY : O_RDWR;
    UniqueFd fd = open_input_file(config.path, access, InputKinds::regular_file_or_block_device,
                                  fmt::format("disk {}", config.path));
    if (config.cache == CacheMode::none) bypass_page_cache(fd.get(), config.path);
    return fd;
}

// Two VMs writing one image corrupt it; two reading it are fine (flock(2), not POSIX locks, so
// the lock belongs to this open file and a second Disk in this process conflicts too).
void lock_image(int fd, DiskConfig const& config) {
    int const op = (config.read_only ? LOCK_SH : LOCK_EX) | LOCK_NB;
    while (::flock(fd, op) != 0) {
        if (errno == EINTR) continue;
        if (errno == EWOULDBLOCK) throw Error(fmt::format("disk {}: in use by another process", config.path));
        throw system_error(fmt::format("disk {}: flock", config.path));
    }
}

std::uint64_t image_size(int fd, std::string const& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw system_error(fmt::format("disk {}: fstat", path));
    if (S_ISREG(st.st_mode)) return static_cast<std::uint64_t>(st.st_size);
    // A block device: open_image accepts nothing else.
    std::uint64_t size = 0;
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) throw system_error(fmt::format("disk {}: BLKGETSIZE64", path));
    return size;
}

struct DirectAlignment {
    std::uint32_t memory;
    std::uint32_t offset;
};

// What O_DIRECT demands of buffers and offsets: statx(STATX_DIOALIGN) where the kernel reports
// it (Linux 6.1+), the logical sector size of a block device, or a page as a safe guess.
DirectAlignment direct_alignment(int fd, std::string const& path) {
    struct statx sx {};
    if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN | STATX_TYPE, &sx) == 0 &&
        (sx.stx_mask & STATX_DIOALIGN)) {
        if (sx.stx_dio_offset_align == 0)
            throw Error(
                fmt::format("disk {}: cache=none: O_DIRECT is not supported for this file "
                            "(use cache=writeback)",
                            path));
        return {std::max(sx.stx_dio_mem_align, 1u), sx.stx_dio_offset_align};
    }
    struct stat st {};
    int sector = 0;
    if (::fstat(fd, &st) == 0 && S_ISBLK(st.st_mode) && ::ioctl(fd, BLKSSZGET, &sector) == 0 && sector > 0)
        return {static_cast<std::uint32_t>(sector), static_cast<std::uint32_t>(sector)};
    return {4096, 4096};
}

std::uint64_t total_length(std::span<iovec const> iov) noexcept {
    std::uint64_t total = 0;
    for (auto const& v : iov) total += v.iov_len;
    return total;
}

// Drops the first `n` bytes from the front of `iov`.
void consume(std::span<iovec>& iov, std::size_t n) noexcept {
    while (n > 0 && !iov.empty()) {
        std::size_t step = std::min(n, iov.front().iov_len);
        iov.front().iov_base = static_cast<std::byte*>(iov.front().iov_base) + step;
        iov.front().iov_len -= step;
        n -= step;
        if (iov.front().iov_len == 0) iov = iov.subspan(1);
    }
    while (!iov.empty() && iov.front().iov_len == 0) iov = iov.subspan(1);
}

// Copies between `buffer` and the front of `iov` (len bytes), consuming those iovec bytes.
void copy_with(std::span<iovec>& iov, std::byte* buffer, std::size_t len, bool into_iov) noexcept {
    std::size_t done = 0;
    while (done < len && !iov.empty()) {
        std::size_t step = std::min(len - done, iov.front().iov_len);
        auto* guest = static_cast<std::byte*>(iov.front().iov_base);
        if (into_iov)
            std::memcpy(guest, buffer + done, step);
        else
            std::memcpy(buffer + done, guest, step);
        done += step;
        consume(iov, step);
    }
}

}  // namespace

void Disk::FreeDeleter::operator()(std::byte* p) const noexcept {
    std::free(p);
}

std::optional<std::string> disk_id_problem(std::string_view id) {
    if (id.size() > virtio::blk::id_bytes) return fmt::format("longer than {} bytes", virtio::blk::id_bytes);
    for (char c : id)
        if (c < 0x21 || c > 0x7e) return std::string("must be printable ASCII without spaces");
    return std::nullopt;
}

Disk::Disk(DiskConfig config) : config_(std::move(config)) {
    check_id(config_);
    fd_ = open_image(config_);
    lock_image(fd_.get(), config_);
    size_ = image_size(fd_.get(), config_.path);
    if (size_ % virtio::blk::sector_size != 0)
        log::warn("disk {}: size {} is not a multiple of 512; the guest sees the first {} bytes",
                  config_.path, size_, size_ - size_ % virtio::blk::sector_size);
    if (config_.cache == CacheMode::none) {
        auto const a = direct_alignment(fd_.get(), config_.path);
        mem_align_ = a.memory;
        offset_align_ = a.offset;
        std::size_t const align = std::max<std::size_t>({a.memory, a.offset, 4096});
        bounce_bytes_ = (bounce_size + align - 1) / align * align;  // a multiple of offset_align_
        bounce_.reset(static_cast<std::byte*>(std::aligned_alloc(align, bounce_bytes_)));
        if (!bounce_)
            throw Error(fmt::format("disk {}: cannot allocate the O_DIRECT bounce buffer", config_.path));
    }
}

Disk::Disk(Disk&&) noexcept = default;
Disk& Disk::operator=(Disk&&) noexcept = default;
Disk::~Disk() = default;

std::uint32_t Disk::block_size() const noexcept {
    return std::max(offset_align_, static_cast<std::uint32_t>(virtio::blk::sector_size));
}

// Without the path: the device's log line names the disk.
Result<void> Disk::failure(char const* what, std::uint64_t offset, int err) const {
    return unexpected(fmt::format("{} at byte {}: {}", what, offset, std::strerror(err)));
}

Result<void> Disk::read(std::uint64_t offset, std::span<iovec> iov) noexcept {
    std::uint64_t const len = total_length(iov);
    if (offset > size_ || len > size_ - offset) return failure("read", offset, ERANGE);
    if (aligned(offset, iov)) return transfer(Direction::read, offset, iov);
    return bounce(Direction::read, offset, iov);
}

Result<void> Disk::write(std::uint64_t offset, std::span<iovec> iov) noexcept {
    std::uint64_t const len = total_length(iov);
    if (offset > size_ || len > size_ - offset) return failure("write", offset, ERANGE);
    if (aligned(offset, iov)) return transfer(Direction::write, offset, iov);
    return bounce(Direction::write, offset, iov);
}

// One buffer (the common 4 KiB request) takes pread/pwrite: cheaper in the kernel than the
// vectored calls, which import the iovec array first.
ssize_t Disk::io(Direction dir, iovec const* iov, int count, off_t pos) const noexcept {
    if (count == 1 && dir == Direction::read) return ::pread(fd_.get(), iov->iov_base, iov->iov_len, pos);
    if (count == 1) return ::pwrite(fd_.get(), iov->iov_base, iov->iov_len, pos);
    if (dir == Direction::read) return ::preadv(fd_.get(), iov, count, pos);
    return ::pwritev(fd_.get(), iov, count, pos);
}

// The loop ends: every pass either moves `offset` forward by n > 0 bytes or returns.
Result<void> Disk::transfer(Direction dir, std::uint64_t offset, std::span<iovec> iov) noexcept {
    consume(iov, 0);
    while (!iov.empty()) {
        int const count = static_cast<int>(std::min<std::size_t>(iov.size(), IOV_MAX));
        auto const pos = static_cast<off_t>(offset);
        ssize_t const n = io(dir, iov.data(), count, pos);
        if (n < 0 && errno == EINTR) continue;
        char const* what = dir == Direction::read ? "read" : "write";
        if (n < 0) return failure(what, offset, errno);
        if (n == 0) return failure(what, offset, EIO);  // the image shrank behind our back
        offset += static_cast<std::uint64_t>(n);
        consume(iov, static_cast<std::size_t>(n));
    }
    return {};
}

bool Disk::aligned(std::uint64_t offset, std::span<iovec const> iov) const noexcept {
    if (!bounce_) return true;  // buffered I/O takes any alignment
    if (offset % offset_align_ != 0) return false;
    return std::all_of(iov.begin(), iov.end(), [this](iovec const& v) {
        return reinterpret_cast<std::uintptr_t>(v.iov_base) % mem_align_ == 0 &&
               v.iov_len % offset_align_ == 0;
    });
}

// cache=none with a guest buffer O_DIRECT cannot take: through the aligned buffer, in chunks.
// The offset and total length must still be aligned: the device cannot read-modify-write.
Result<void> Disk::bounce(Direction dir, std::uint64_t offset, std::span<iovec> iov) noexcept {
    std::uint64_t total = total_length(iov);
    if (offset % offset_align_ != 0 || total % offset_align_ != 0)
        return failure(dir == Direction::read ? "read (not aligned for cache=none)"
                                              : "write (not aligned for cache=none)",
                       offset, EINVAL);
    ++bounced_;
    // Bound: total / bounce_bytes_ passes, each moving a whole chunk.
    while (total > 0) {
        std::size_t const chunk = static_cast<std::size_t>(std::min<std::uint64_t>(total, bounce_bytes_));
        if (auto r = bounce_chunk(dir, offset, iov, chunk); !r) return r;
        offset += chunk;
        total -= chunk;
    }
    return {};
}

Result<void> Disk::bounce_chunk(Direction dir, std::uint64_t offset, std::span<iovec>& iov,
                                std::size_t len) noexcept {
    iovec buffer{bounce_.get(), len};
    if (dir == Direction::write) copy_with(iov, bounce_.get(), len, false);
    if (auto r = transfer(dir, offset, std::span{&buffer, 1}); !r) return r;
    if (dir == Direction::read) copy_with(iov, bounce_.get(), len, true);
    return {};
}

Result<void> Disk::flush() noexcept {
    if (::fdatasync(fd_.get()) != 0) return unexpected(fmt::format("fdatasync: {}", std::strerror(errno)));
    return {};
}

Result<void> Disk::discard(std::uint64_t offset, std::uint64_t len) noexcept {
    if (offset > size_ || len > size_ - offset) return failure("discard", offset, ERANGE);
    int const mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    if (::fallocate(fd_.get(), mode, static_cast<off_t>(offset), static_cast<off_t>(len)) == 0) return {};
    if (errno == EOPNOTSUPP) return {};  // discard is a hint (§5.2.6.2: the device MAY deallocate)
    return failure("discard", offset, errno);
}

Result<void> Disk::write_zeroes(std::uint64_t offset, std::uint64_t len, bool may_unmap) noexcept {
    if (offset > size_ || len > size_ - offset) return failure("write zeroes", offset, ERANGE);
    auto const pos = static_cast<off_t>(offset);
    auto const length = static_cast<off_t>(len);
    if (may_unmap && ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, pos, length) == 0)
        return {};
    if (::fallocate(fd_.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, pos, length) == 0) return {};
    if (errno != EOPNOTSUPP) return failure("write zeroes", offset, errno);
    return write_zeros_by_hand(offset, len);
}

// Bounded by `len`, which the device limits to max_write_zeroes_sectors per segment.
Result<void> Disk::write_zeros_by_hand(std::uint64_t offset, std::uint64_t len) noexcept {
    while (len > 0) {
        std::size_t const chunk = static_cast<std::size_t>(std::min<std::uint64_t>(len, zero_block_size));
        // Safety: pwritev only reads from the iovec, so the const zero block is never written.
        iovec zeros{const_cast<std::byte*>(zero_block), chunk};
        if (auto r = transfer(Direction::write, offset, std::span{&zeros, 1}); !r) return r;
        offset += chunk;
        len -= chunk;
    }
    return {};
}

}  // namespace kvmlet
