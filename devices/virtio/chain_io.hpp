#pragma once
// Byte streams over a descriptor chain: devices must not assume how the driver split a request
// across buffers (virtio 1.2 §2.7.4 Message Framing), so they read and write through these.
// Every copy goes through GuestMemory; a buffer outside RAM makes the operation fail.
#include <cstddef>
#include <cstdint>
#include <span>

#include "devices/virtio/queue.hpp"

namespace kvmlet::virtio {

// Reads the chain's device-readable buffers front to back.
class ChainReader {
public:
    ChainReader(GuestMemory const& memory, DescriptorChain const& chain) noexcept;
    // Copies exactly out.size() bytes, or returns false (too few bytes left, or outside RAM).
    [[nodiscard]] bool read(std::span<std::byte> out) noexcept;
    template <class T>
    [[nodiscard]] bool read_obj(T& value) noexcept { return read(std::as_writable_bytes(std::span{&value, 1})); }
    std::uint64_t remaining() const noexcept { return remaining_; }

private:
    GuestMemory const* memory_;
    std::span<Descriptor const> buffers_;  // readable buffers only
    std::size_t index_ = 0;
    std::uint32_t offset_ = 0;  // into buffers_[index_]
    std::uint64_t remaining_ = 0;
};

// Writes into the chain's device-writable buffers front to back, counting bytes written (the
// used length).
class ChainWriter {
public:
    ChainWriter(GuestMemory const& memory, DescriptorChain const& chain) noexcept;
    [[nodiscard]] bool write(std::span<std::byte const> in) noexcept;
    template <class T>
    [[nodiscard]] bool write_obj(T const& value) noexcept { return write(std::as_bytes(std::span{&value, 1})); }
    std::uint64_t remaining() const noexcept { return remaining_; }
    std::uint32_t written() const noexcept { return written_; }

private:
    GuestMemory const* memory_;
    std::span<Descriptor const> buffers_;  // writable buffers only
    std::size_t index_ = 0;
    std::uint32_t offset_ = 0;
    std::uint64_t remaining_ = 0;
    std::uint32_t written_ = 0;
};

}  // namespace kvmlet::virtio
