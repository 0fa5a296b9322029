#pragma once
// Byte streams over a descriptor chain: devices must not assume how the driver split a request
// across buffers (virtio 1.2 §2.7.4 Message Framing), so they read and write through these.
// Every copy goes through GuestMemory; a buffer outside RAM makes the operation fail.
#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "devices/virtio/queue.hpp"

namespace kvmlet::virtio {

// A position in a run of buffers, walked front to back; shared by reader and writer.
class BufferCursor {
public:
    explicit BufferCursor(std::span<Descriptor const> buffers) noexcept;
    std::uint64_t remaining() const noexcept { return remaining_; }
    // Calls copy(guest address, offset into the caller's bytes, length) for each piece of the next
    // `len` bytes, in order; stops and returns false at the first copy that fails. False as well,
    // with nothing copied, when fewer than `len` bytes remain.
    template <class Copy>
    bool advance(std::size_t len, Copy copy) noexcept {
        if (len > remaining_) return false;
        for (std::size_t done = 0; done < len;) {
            auto const& d = buffers_[index_];
            std::size_t n = std::min<std::size_t>(len - done, d.len - offset_);
            if (n != 0 && !copy(GuestAddress{d.addr.value + offset_}, done, n)) return false;
            done += n;
            remaining_ -= n;
            offset_ += static_cast<std::uint32_t>(n);
            if (offset_ == d.len) ++index_, offset_ = 0;
        }
        return true;
    }

private:
    std::span<Descriptor const> buffers_;
    std::size_t index_ = 0;
    std::uint32_t offset_ = 0;  // into buffers_[index_]
    std::uint64_t remaining_ = 0;
};

// Reads the chain's device-readable buffers front to back.
class ChainReader {
public:
    ChainReader(GuestMemory const& memory, DescriptorChain const& chain) noexcept;
    // Copies exactly out.size() bytes, or returns false (too few bytes left, or outside RAM).
    [[nodiscard]] bool read(std::span<std::byte> out) noexcept;
    template <class T>
    [[nodiscard]] bool read_obj(T& value) noexcept {
        return read(std::as_writable_bytes(std::span{&value, 1}));
    }
    // Moves past `len` bytes without reading them (resuming a chain served in parts).
    [[nodiscard]] bool skip(std::uint64_t len) noexcept;
    std::uint64_t remaining() const noexcept { return cursor_.remaining(); }

private:
    GuestMemory const* memory_;
    BufferCursor cursor_;  // over the readable buffers
};

// Writes into the chain's device-writable buffers front to back, counting bytes written (the
// used length).
class ChainWriter {
public:
    ChainWriter(GuestMemory const& memory, DescriptorChain const& chain) noexcept;
    [[nodiscard]] bool write(std::span<std::byte const> in) noexcept;
    template <class T>
    [[nodiscard]] bool write_obj(T const& value) noexcept {
        return write(std::as_bytes(std::span{&value, 1}));
    }
    std::uint64_t remaining() const noexcept { return cursor_.remaining(); }
    std::uint32_t written() const noexcept { return written_; }

private:
    GuestMemory const* memory_;
    BufferCursor cursor_;  // over the writable buffers
    std::uint32_t written_ = 0;
};

enum class Direction { readable, writable };
inline constexpr std::uint64_t all_bytes = std::numeric_limits<std::uint64_t>::max();

// Host views (iovecs, for preadv/writev/recv) of up to `len` bytes of the chain's readable (or
// writable) buffers, `skip` bytes in, appended to `out`. The one way from a chain to host memory
// for bulk I/O: each piece is checked against RAM (GuestMemory::slice) as it is viewed, and `out`
// never grows past the capacity reserved at setup. Returns the bytes viewed (fewer than `len`
// when the buffers end first); nullopt when a viewed piece is outside RAM, the buffers hold fewer
// than `skip` bytes, or `out` is full. The views are used at once, under the device lock; the
// guest may change the bytes meanwhile, which only changes its own data.
std::optional<std::uint64_t> view_buffers(GuestMemory const& memory, DescriptorChain const& chain,
                                          Direction direction, std::uint64_t skip, std::uint64_t len,
                                          std::vector<iovec>& out) noexcept;

}  // namespace kvmlet::virtio
