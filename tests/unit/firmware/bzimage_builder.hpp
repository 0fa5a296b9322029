#pragma once
// Test helper: a synthetic bzImage, its header fields written at the offsets boot.rst gives (not
// through kvmlet's own structs, so the tests check those too).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/unit/firmware/elf_builder.hpp"

namespace kvmlet::test {

template <class T>
void put(std::vector<std::byte>& image, std::size_t offset, T value) {
    std::memcpy(image.data() + offset, &value, sizeof value);
}

template <class T>
T get(std::vector<std::byte> const& image, std::size_t offset) {
    T value;
    std::memcpy(&value, image.data() + offset, sizeof value);
    return value;
}

// Defaults shaped like a modern x86-64 kernel (Debian's 6.1: protocol 2.15, relocatable, 2 MiB
// alignment, runs at 16 MiB), scaled down: 64 KiB of protected-mode code needing 8 MiB to boot.
struct BzImageBuilder {
    std::uint8_t setup_sects = 8;
    std::uint16_t boot_flag = 0xaa55;
    std::uint32_t header_magic = 0x5372'6448;
    std::uint16_t version = 0x020f;
    std::uint8_t jump = 0x6a;  // header ends at 0x26c
    std::uint8_t loadflags = 0x01;
    std::uint16_t xloadflags = 0x7f;
    std::uint8_t relocatable = 1;
    std::uint32_t kernel_alignment = 0x20'0000;
    std::uint64_t pref_address = 0x100'0000;
    std::uint32_t init_size = 0x80'0000;
    std::uint32_t cmdline_size = 2047;
    std::uint32_t initrd_addr_max = 0x7fff'ffff;
    std::size_t protected_mode_size = 0x1'0000;
    std::size_t syssize_bytes = 0x1'0000;  // what the header claims

    std::size_t setup_size() const { return (std::size_t{setup_sects == 0 ? 4u : setup_sects} + 1) * 512; }

    std::vector<std::byte> build() const {
        std::vector<std::byte> image(setup_size() + protected_mode_size);
        auto const code = pattern(protected_mode_size, 9);
        std::copy(code.begin(), code.end(), image.begin() + static_cast<std::ptrdiff_t>(setup_size()));
        put<std::uint8_t>(image, 0x1f1, setup_sects);
        put<std::uint32_t>(image, 0x1f4, static_cast<std::uint32_t>(syssize_bytes / 16));
        put<std::uint16_t>(image, 0x1fa, 0xfffd);  // vid_mode "ask": the loader must overwrite it
        put<std::uint16_t>(image, 0x1fe, boot_flag);
        put<std::uint8_t>(image, 0x200, 0xeb);
        put<std::uint8_t>(image, 0x201, jump);
        put<std::uint32_t>(image, 0x202, header_magic);
        put<std::uint16_t>(image, 0x206, version);
        put<std::uint8_t>(image, 0x211, loadflags);
        put<std::uint32_t>(image, 0x214, 0x10'0000);  // code32_start
        put<std::uint32_t>(image, 0x22c, initrd_addr_max);
        put<std::uint32_t>(image, 0x230, kernel_alignment);
        put<std::uint8_t>(image, 0x234, relocatable);
        put<std::uint8_t>(image, 0x235, 21);  // min_alignment
        put<std::uint16_t>(image, 0x236, xloadflags);
        put<std::uint32_t>(image, 0x238, cmdline_size);
        put<std::uint64_t>(image, 0x258, pref_address);
        put<std::uint32_t>(image, 0x260, init_size);
        put<std::uint32_t>(image, 0x268, 0x1234);  // kernel_info_offset: the last field, copied as is
        return image;
    }
};

}  // namespace kvmlet::test
