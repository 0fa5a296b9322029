#pragma once
// Shared pieces of the fuzz targets: a reader that turns the fuzzer's bytes into values (never
// failing: past the end it yields zeros), one small flat guest RAM reused by every input, and the
// compact queue layout the targets share with their seed corpora (see README.md).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "devices/virtio/queue.hpp"
#include "vmm/base/log.hpp"
#include "vmm/memory/guest_memory.hpp"

namespace kvmlet::fuzz {

// Consumes the input front to back; reads past the end give zeros and leave the reader empty.
class ByteReader {
public:
    explicit ByteReader(std::span<std::uint8_t const> data) noexcept : data_(data) {}
    bool empty() const noexcept { return data_.empty(); }
    std::size_t size() const noexcept { return data_.size(); }

    template <class T>
    T take() noexcept {
        T value{};
        std::size_t const n = std::min(sizeof(T), data_.size());
        std::memcpy(&value, data_.data(), n);
        data_ = data_.subspan(n);
        return value;
    }
    std::span<std::uint8_t const> take_bytes(std::size_t n) noexcept {
        n = std::min(n, data_.size());
        auto out = data_.first(n);
        data_ = data_.subspan(n);
        return out;
    }

private:
    std::span<std::uint8_t const> data_;
};

// Guest RAM for the targets: one 64 KiB region at guest address 0, created once (an mmap per
// input would dominate the run time) and rewritten from each input.
inline constexpr std::uint64_t ram_size = 64 * 1024;

inline GuestMemory const& ram() {
    static GuestMemory const memory = [] {
        RamRange const range{GuestAddress{0}, ram_size};
        return GuestMemory::create(std::span{&range, 1});
    }();
    return memory;
}

// Zeroes RAM, then copies `image` (truncated to RAM) to guest address 0.
inline void load_ram(std::span<std::uint8_t const> image) {
    auto bytes = *ram().slice(GuestAddress{0}, ram_size);
    std::memset(bytes.data(), 0, bytes.size());
    std::memcpy(bytes.data(), image.data(), std::min<std::size_t>(image.size(), bytes.size()));
}

// The fuzzers' stderr would otherwise be one warning per malformed chain; KVMLET_FUZZ_LOG=1
// keeps them.
inline void quiet_logs() {
    static bool const done = [] {
        if (std::getenv("KVMLET_FUZZ_LOG") == nullptr) log::set_level(log::Level::error);
        return true;
    }();
    (void)done;
}

// The queue layout the targets use unless the input asks for its own addresses: descriptor
// table at 0, avail ring right after it, used ring at the next 4-byte boundary (the smallest
// layout §2.7 allows, so seeds stay tiny). Buffers go anywhere after it.
inline virtio::QueueConfig compact_layout(std::uint16_t size) {
    std::uint64_t const avail = 16ull * size;
    std::uint64_t const used = (avail + 6 + 2ull * size + 3) & ~3ull;
    return {.size = size,
            .desc = GuestAddress{0},
            .avail = GuestAddress{avail},
            .used = GuestAddress{used},
            .ready = true};
}

// Header shared by fuzz_virtqueue and fuzz_virtio_blk (8 bytes):
//   [0] queue size: 1 << (byte % 10) (sizes above the device's maximum fail activation)
//   [1] flags: bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 7 use the addresses below; bits 2-6 are
//       the target's own
//   [2..7] desc, avail, used addresses (little-endian u16 each), used only with flag bit 7
// then u16 ram_len and ram_len bytes of RAM image at guest address 0, then rounds: each is a patch
// (u16 address, u8 length, bytes) written into RAM before the device looks at the queue again.
struct QueueHeader {
    virtio::QueueConfig config;
    bool event_idx = false;
    bool indirect = false;
    std::uint8_t flags = 0;
};

inline constexpr std::uint8_t flag_event_idx = 1;
inline constexpr std::uint8_t flag_indirect = 2;
inline constexpr std::uint8_t flag_explicit_layout = 0x80;

inline QueueHeader take_queue_header(ByteReader& in) {
    auto const size = static_cast<std::uint16_t>(1u << (in.take<std::uint8_t>() % 10));
    QueueHeader h;
    h.flags = in.take<std::uint8_t>();
    h.event_idx = (h.flags & flag_event_idx) != 0;
    h.indirect = (h.flags & flag_indirect) != 0;
    auto const desc = in.take<std::uint16_t>();
    auto const avail = in.take<std::uint16_t>();
    auto const used = in.take<std::uint16_t>();
    h.config = compact_layout(size);
    if (h.flags & flag_explicit_layout) {
        h.config.desc = GuestAddress{desc};
        h.config.avail = GuestAddress{avail};
        h.config.used = GuestAddress{used};
    }
    return h;
}

inline void take_ram_image(ByteReader& in) {
    auto const len = in.take<std::uint16_t>();
    load_ram(in.take_bytes(len));
}

// Applies the next patch; false when the input is used up. At most 255 bytes each.
inline bool apply_patch(ByteReader& in) {
    if (in.empty()) return false;
    auto const address = in.take<std::uint16_t>();
    auto const len = in.take<std::uint8_t>();
    auto const bytes = in.take_bytes(len);
    // Patches that run past the end of RAM are cut short (a driver cannot write there either).
    std::size_t const n = std::min<std::size_t>(bytes.size(), ram_size - address);
    (void)ram().write_bytes(GuestAddress{address}, std::as_bytes(bytes.first(n)));
    return true;
}

inline constexpr int max_rounds = 16;

// Stops the target with a message when an invariant the fuzzer checks does not hold (the
// fuzzer then saves the input as a crash).
[[noreturn]] inline void invariant_failed(char const* what) {
    std::fprintf(stderr, "fuzz invariant failed: %s\n", what);
    std::abort();
}
#define KVMLET_FUZZ_CHECK(cond)                                                 \
    do {                                                                        \
        if (!(cond)) ::kvmlet::fuzz::invariant_failed(#cond " (" __FILE__ ")"); \
    } while (0)

}  // namespace kvmlet::fuzz
