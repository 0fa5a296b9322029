#include "firmware/x86_64/bzimage.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <utility>

#include "firmware/x86_64/layout.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::x86_64 {
namespace {

// boot.rst "Details of Header Fields" and "The Real-Mode Kernel Header".
constexpr std::uint16_t min_version = 0x020c;  // 2.12: xloadflags, for XLF_KERNEL_64
constexpr std::size_t version_offset = 0x206;
constexpr std::size_t sector_size = 512;
constexpr std::uint8_t setup_sects_if_zero = 4;  // "If this field is 0, the real value is 4"
// "The real-mode code can total up to 32K": the boot sector and at most 63 setup sectors.
constexpr std::uint8_t max_setup_sects = 32 * KiB / sector_size - 1;
constexpr std::uint64_t syssize_unit = 16;  // "in units of 16-byte paragraphs"
constexpr std::uint8_t max_positive_jump = 0x7f;
// Protocol 2.12 defines every field up to handover_offset (0x264, 4 bytes).
constexpr std::size_t min_header_end = 0x268;

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
    throw Error("kernel: bzImage " + fmt::format(format, std::forward<Args>(args)...));
}

template <class T>
T read_at(std::span<std::byte const> image, std::size_t offset) noexcept {
    T value;  // callers checked that [offset, offset + sizeof(T)) lies in the image
    std::memcpy(&value, image.data() + offset, sizeof value);
    return value;
}

void check_version(std::span<std::byte const> image) {
    if (image.size() < version_offset + sizeof(std::uint16_t)) fail("is truncated inside its setup header");
    auto const version = read_at<std::uint16_t>(image, version_offset);
    if (version < min_version)
        fail("boot protocol {}.{:02} is too old: the 64-bit entry needs 2.12 or later", version >> 8,
             version & 0xff);
}

// boot.rst "64-bit Boot Protocol": "The end of setup header can be calculated as follows:
// 0x0202 + byte value at offset 0x0201" (the jump's signed offset).
std::size_t header_end(std::span<std::byte const> image) {
    auto const jump = std::to_integer<std::uint8_t>(image[jump_offset + 1]);
    if (jump > max_positive_jump) fail("setup header length (jump offset {:#x}) is negative", jump);
    std::size_t const end = header_magic_offset + jump;
    if (end < min_header_end)
        fail("setup header ends at {:#x}; protocol 2.12 needs it to reach {:#x}", end, min_header_end);
    if (end > image.size()) fail("is truncated inside its setup header");
    return end;
}

void check_flags(SetupHeader const& header) {
    if (!(header.loadflags & loadflags_loaded_high))
        fail("is not loaded high (LOADED_HIGH clear: a zImage); only bzImage kernels boot");
    if (!(header.xloadflags & xloadflags_kernel_64))
        fail("has no 64-bit entry point (XLF_KERNEL_64 clear: a 32-bit kernel?)");
}

// Returns the size of the boot sector and setup code: where the protected-mode kernel starts.
std::size_t setup_size(SetupHeader const& header, std::size_t image_size) {
    std::uint8_t const sects = header.setup_sects == 0 ? setup_sects_if_zero : header.setup_sects;
    if (sects > max_setup_sects)
        fail("setup_sects {} is not sane (the real-mode code is at most 32 KiB: {} sectors)", sects,
             max_setup_sects);
    std::size_t const size = (std::size_t{sects} + 1) * sector_size;
    if (size + bzimage_entry_64_offset >= image_size)
        fail("setup ({} sectors, {} bytes) leaves no protected-mode kernel in the {}-byte file", sects, size,
             image_size);
    return size;
}

void check_syssize(SetupHeader const& header, std::uint64_t protected_mode_size) {
    std::uint64_t const paragraphs =
        protected_mode_size / syssize_unit + (protected_mode_size % syssize_unit != 0);
    std::uint32_t const syssize = header.syssize;
    if (syssize > paragraphs)
        fail("is truncated: the header says the protected-mode kernel is {} bytes, the file holds {}",
             std::uint64_t{syssize} * syssize_unit, protected_mode_size);
}

// boot.rst "init_size": a relocatable kernel runs at its load address aligned up to
// kernel_alignment, and never below pref_address (LOAD_PHYSICAL_ADDR: compressed/head_64.S moves it
// there); any other kernel runs at pref_address.
GuestAddress runtime_start(SetupHeader const& header) {
    std::uint64_t start = header.pref_address;
    if (header.relocatable_kernel) {
        std::uint32_t const alignment = header.kernel_alignment;
        if (!std::has_single_bit(alignment)) fail("kernel_alignment {:#x} is not a power of two", alignment);
        // 1 MiB plus less than 2^32 cannot wrap.
        std::uint64_t const aligned =
            (bzimage_load_address.value + alignment - 1) & ~(std::uint64_t{alignment} - 1);
        start = std::max(aligned, start);
    }
    if (start < bzimage_load_address.value)
        fail("wants to run at {:#x}, below {:#x}", start, bzimage_load_address.value);
    return GuestAddress{start};
}

}  // namespace

bool is_bzimage(std::span<std::byte const> image) noexcept {
    return image.size() >= header_magic_offset + sizeof(std::uint32_t) &&
           read_at<std::uint16_t>(image, boot_flag_offset) == boot_flag_magic &&
           read_at<std::uint32_t>(image, header_magic_offset) == header_magic;
}

BzImage parse_bzimage(std::span<std::byte const> image) {
    if (!is_bzimage(image)) throw Error("kernel: not an ELF or bzImage");
    check_version(image);
    std::size_t const end = header_end(image);
    SetupHeader header{};
    std::memcpy(&header, image.data() + setup_header_offset,
                std::min(end - setup_header_offset, sizeof header));
    check_flags(header);
    std::size_t const setup = setup_size(header, image.size());
    auto const protected_mode = image.subspan(setup);
    check_syssize(header, protected_mode.size());
    GuestAddress const start = runtime_start(header);
    std::uint32_t const init_size = header.init_size;
    auto const runtime_end = start.checked_add(init_size);
    if (!runtime_end) fail("runtime range {:#x} + init_size {:#x} wraps around 2^64", start.value, init_size);
    return BzImage{header, image.subspan(setup_header_offset, end - setup_header_offset), protected_mode,
                   start, runtime_end->value};
}

}  // namespace kvmlet::x86_64
