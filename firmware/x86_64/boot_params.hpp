#pragma once
// The Linux x86 zero page (struct boot_params) and its setup header, as wire structs.
// Layout: Linux arch/x86/include/uapi/asm/bootparam.h; field meanings: Documentation/arch/x86/
// boot.rst ("The Real-Mode Kernel Header", "Details of Header Fields") and zero-page.rst.
// Both structs are packed, as in the kernel: read a field into a local before binding a reference.
#include <cstddef>
#include <cstdint>

namespace kvmlet::x86_64 {

// boot.rst "Details of Header Fields".
inline constexpr std::uint16_t boot_flag_magic = 0xaa55;
inline constexpr std::uint32_t header_magic = 0x5372'6448;      // "HdrS"
inline constexpr std::uint8_t loadflags_loaded_high = 1u << 0;  // protected-mode code at 0x100000
inline constexpr std::uint16_t xloadflags_kernel_64 = 1u << 0;  // 64-bit entry at load address + 0x200
inline constexpr std::uint8_t type_of_loader_undefined = 0xff;  // "Special (0xFF = undefined)"
inline constexpr std::uint16_t vid_mode_normal = 0xffff;        // "vga=normal"

// Offsets in the kernel image and in the zero page (the setup header sits at the same offset in both).
inline constexpr std::size_t setup_header_offset = 0x1f1;
inline constexpr std::size_t boot_flag_offset = 0x1fe;
inline constexpr std::size_t jump_offset = 0x200;  // 0xEB, then a signed offset relative to 0x202
inline constexpr std::size_t header_magic_offset = 0x202;
// boot.rst "The kernel_info": the 2-byte jump that ends the header reaches at most 0x202 + 0x7f.
inline constexpr std::size_t setup_header_max_end = 0x202 + 0x7f;

#pragma pack(push, 1)

struct SetupHeader {
    std::uint8_t setup_sects;
    std::uint16_t root_flags;
    std::uint32_t syssize;
    std::uint16_t ram_size;
    std::uint16_t vid_mode;
    std::uint16_t root_dev;
    std::uint16_t boot_flag;
    std::uint16_t jump;
    std::uint32_t header;
    std::uint16_t version;
    std::uint32_t realmode_swtch;
    std::uint16_t start_sys_seg;
    std::uint16_t kernel_version;
    std::uint8_t type_of_loader;
    std::uint8_t loadflags;
    std::uint16_t setup_move_size;
    std::uint32_t code32_start;
    std::uint32_t ramdisk_image;
    std::uint32_t ramdisk_size;
    std::uint32_t bootsect_kludge;
    std::uint16_t heap_end_ptr;
    std::uint8_t ext_loader_ver;
    std::uint8_t ext_loader_type;
    std::uint32_t cmd_line_ptr;
    std::uint32_t initrd_addr_max;
    std::uint32_t kernel_alignment;
    std::uint8_t relocatable_kernel;
    std::uint8_t min_alignment;
    std::uint16_t xloadflags;
    std::uint32_t cmdline_size;
    std::uint32_t hardware_subarch;
    std::uint64_t hardware_subarch_data;
    std::uint32_t payload_offset;
    std::uint32_t payload_length;
    std::uint64_t setup_data;
    std::uint64_t pref_address;
    std::uint32_t init_size;
    std::uint32_t handover_offset;
    std::uint32_t kernel_info_offset;
};
static_assert(sizeof(SetupHeader) == 0x26c - setup_header_offset);
static_assert(offsetof(SetupHeader, boot_flag) == boot_flag_offset - setup_header_offset);
static_assert(offsetof(SetupHeader, header) == header_magic_offset - setup_header_offset);
static_assert(offsetof(SetupHeader, cmd_line_ptr) == 0x228 - setup_header_offset);
static_assert(offsetof(SetupHeader, xloadflags) == 0x236 - setup_header_offset);
static_assert(offsetof(SetupHeader, init_size) == 0x260 - setup_header_offset);

// e820 types (ACPI 6.5 §15.3 "Address Range Types"; boot_e820_entry in bootparam.h).
inline constexpr std::uint32_t e820_ram = 1;
inline constexpr std::uint32_t e820_reserved = 2;
inline constexpr std::size_t e820_max_entries_zeropage = 128;

struct E820Entry {
    std::uint64_t addr;
    std::uint64_t size;
    std::uint32_t type;
};
static_assert(sizeof(E820Entry) == 20);

struct BootParams {
    std::uint8_t pad_to_acpi_rsdp_addr[0x070];
    std::uint64_t acpi_rsdp_addr;  // protocol 2.14: where the RSDP is; 0 lets the kernel scan for it
    std::uint8_t pad_to_ext_ramdisk[0x0c0 - 0x078];
    std::uint32_t ext_ramdisk_image;  // high 32 bits of hdr.ramdisk_image
    std::uint32_t ext_ramdisk_size;
    std::uint32_t ext_cmd_line_ptr;
    std::uint8_t pad_to_e820_entries[0x1e8 - 0x0cc];
    std::uint8_t e820_entries;
    std::uint8_t pad_to_sentinel[0x1ef - 0x1e9];
    std::uint8_t sentinel;  // must stay 0: nonzero tells the kernel the loader copied too much
    std::uint8_t pad_to_hdr;
    SetupHeader hdr;
    std::uint8_t hdr_growth[0x290 - 0x26c];  // room the setup header may grow into
    std::uint8_t edd_mbr_sig_buffer[0x2d0 - 0x290];
    E820Entry e820_table[e820_max_entries_zeropage];
    std::uint8_t pad_to_end[0x1000 - 0xcd0];
};
static_assert(sizeof(BootParams) == 4096);
static_assert(offsetof(BootParams, acpi_rsdp_addr) == 0x070);
static_assert(offsetof(BootParams, ext_ramdisk_image) == 0x0c0);
static_assert(offsetof(BootParams, ext_cmd_line_ptr) == 0x0c8);
static_assert(offsetof(BootParams, e820_entries) == 0x1e8);
static_assert(offsetof(BootParams, sentinel) == 0x1ef);
static_assert(offsetof(BootParams, hdr) == setup_header_offset);
static_assert(offsetof(BootParams, e820_table) == 0x2d0);
static_assert(setup_header_max_end <= offsetof(BootParams, edd_mbr_sig_buffer));

#pragma pack(pop)

}  // namespace kvmlet::x86_64
