#include "firmware/elf_loader.hpp"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>
#include <utility>

#include "vmm/base/error.hpp"

namespace kvmlet::firmware {
namespace {

// Wire layouts: ELF-64 Object File Format 1.5, "ELF Header" (Figure 2) and "Program Header
// Table" (Figure 5). glibc's types match them field for field; the sizes pin that down.
static_assert(sizeof(Elf64_Ehdr) == 64);
static_assert(sizeof(Elf64_Phdr) == 56);
// Fields are copied out as host integers, so the host must share the image's byte order.
static_assert(std::endian::native == std::endian::little);

// Real kernels have fewer than 10; the cap bounds the work an image can ask for, and rejects
// PN_XNUM (0xffff), the escape to a count stored elsewhere.
constexpr std::size_t max_program_headers = 128;

// A PT_LOAD segment whose every field has been checked.
struct LoadSegment {
    std::size_t index;
    std::uint64_t paddr;
    std::uint64_t paddr_end;  // paddr + memsz, checked not to wrap
    std::uint64_t vaddr;      // vaddr + memsz checked not to wrap
    std::uint64_t offset;
    std::uint64_t filesz;
    std::uint64_t memsz;
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
    throw Error("kernel: " + fmt::format(format, std::forward<Args>(args)...));
}

bool in_image(std::span<std::byte const> image, std::uint64_t offset, std::uint64_t size) noexcept {
    return offset <= image.size() && size <= image.size() - offset;
}

void check_header(Elf64_Ehdr const& header) {
    if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_machine != EM_X86_64)
        fail("ELF is not 64-bit x86-64 (class {}, machine {})", header.e_ident[EI_CLASS], header.e_machine);
    if (header.e_ident[EI_DATA] != ELFDATA2LSB) fail("ELF is not little-endian");
    if (header.e_ident[EI_VERSION] != EV_CURRENT || header.e_version != EV_CURRENT)
        fail("unsupported ELF version {}", header.e_version);
    if (header.e_type == ET_DYN)
        fail("ELF is position-independent (ET_DYN); only executables (ET_EXEC) load");
    if (header.e_type != ET_EXEC) fail("ELF type {} is not an executable (ET_EXEC)", header.e_type);
    if (header.e_phentsize != sizeof(Elf64_Phdr))
        fail("ELF program header size is {} bytes, expected {}", header.e_phentsize, sizeof(Elf64_Phdr));
    if (header.e_phnum == 0) fail("no loadable segments");
    if (header.e_phnum > max_program_headers)
        fail("too many program headers ({}, at most {})", header.e_phnum, max_program_headers);
}

Elf64_Ehdr read_header(std::span<std::byte const> image) {
    if (!is_elf(image)) fail("not an ELF or bzImage");
    if (image.size() < sizeof(Elf64_Ehdr))
        fail("truncated ELF header ({} bytes, need {})", image.size(), sizeof(Elf64_Ehdr));
    Elf64_Ehdr header;
    std::memcpy(&header, image.data(), sizeof header);
    check_header(header);
    return header;
}

std::vector<Elf64_Phdr> read_program_headers(std::span<std::byte const> image, Elf64_Ehdr const& header) {
    // At most 128 * 56 bytes after check_header, so the product cannot overflow.
    std::uint64_t const table_size = std::uint64_t{header.e_phnum} * header.e_phentsize;
    if (!in_image(image, header.e_phoff, table_size)) fail("program header table outside the file");
    std::vector<Elf64_Phdr> headers(header.e_phnum);
    auto const table = image.subspan(header.e_phoff, table_size);
    std::memcpy(headers.data(), table.data(), table.size());
    return headers;
}

void check_not_reserved(std::span<ReservedRange const> reserved, std::size_t index, std::uint64_t start,
                        std::uint64_t end) {
    for (auto const& r : reserved) {
        if (start < r.end.value && r.start.value < end)
            fail("segment {} at [{:#x}, {:#x}) overlaps {} [{:#x}, {:#x})", index, start, end, r.name,
                 r.start.value, r.end.value);
    }
}

// nullopt for an empty segment (p_memsz == 0): it occupies nothing and is skipped.
std::optional<LoadSegment> check_load_segment(GuestMemory const& memory, std::span<std::byte const> image,
                                              Elf64_Phdr const& ph, std::size_t index,
                                              std::span<ReservedRange const> reserved) {
    if (ph.p_filesz > ph.p_memsz)
        fail("segment {} file size {:#x} exceeds its memory size {:#x}", index, ph.p_filesz, ph.p_memsz);
    if (!in_image(image, ph.p_offset, ph.p_filesz)) fail("segment {} data outside the file", index);
    if (ph.p_memsz == 0) return std::nullopt;
    auto const end = GuestAddress{ph.p_paddr}.checked_add(ph.p_memsz);
    if (!end) fail("segment {} at {:#x} with size {:#x} wraps around 2^64", index, ph.p_paddr, ph.p_memsz);
    if (!GuestAddress{ph.p_vaddr}.checked_add(ph.p_memsz))
        fail("segment {} virtual address {:#x} with size {:#x} wraps around 2^64", index, ph.p_vaddr,
             ph.p_memsz);
    check_not_reserved(reserved, index, ph.p_paddr, end->value);
    if (!memory.contains(GuestAddress{ph.p_paddr}, ph.p_memsz))
        fail("segment {} at [{:#x}, {:#x}) is outside guest RAM", index, ph.p_paddr, end->value);
    return LoadSegment{index, ph.p_paddr, end->value, ph.p_vaddr, ph.p_offset, ph.p_filesz, ph.p_memsz};
}

ImageRange check_note(std::span<std::byte const> image, Elf64_Phdr const& ph, std::size_t index) {
    if (!in_image(image, ph.p_offset, ph.p_filesz)) fail("note segment {} outside the file", index);
    return ImageRange{ph.p_offset, ph.p_filesz};
}

// At most 128 segments, so the pairwise walk is bounded (8128 comparisons).
void check_no_overlap(std::span<LoadSegment const> segments) {
    for (std::size_t i = 0; i < segments.size(); ++i) {
        for (std::size_t j = i + 1; j < segments.size(); ++j) {
            auto const& a = segments[i];
            auto const& b = segments[j];
            if (a.paddr < b.paddr_end && b.paddr < a.paddr_end)
                fail("segments {} and {} overlap", a.index, b.index);
        }
    }
}

// e_entry is virtual, and the segment that holds it says where that lands in physical memory; or,
// as in Linux's vmlinux, it is already physical (see load_elf in the header).
GuestAddress translate_entry(std::span<LoadSegment const> segments, std::uint64_t entry) {
    for (auto const& s : segments) {
        if (entry >= s.vaddr && entry - s.vaddr < s.memsz) return GuestAddress{s.paddr + (entry - s.vaddr)};
    }
    for (auto const& s : segments) {
        if (entry >= s.paddr && entry - s.paddr < s.memsz) return GuestAddress{entry};
    }
    fail("entry point {:#x} is outside every loadable segment", entry);
}

void copy_segment(GuestMemory const& memory, std::span<std::byte const> image, LoadSegment const& s) {
    // Both ranges were checked by check_load_segment; a failure here is a bug, not a bad image.
    auto const target = memory.slice(GuestAddress{s.paddr}, s.memsz);
    if (!target) fail("segment {} vanished from guest RAM", s.index);
    auto const data = image.subspan(s.offset, s.filesz);
    std::copy(data.begin(), data.end(), target->begin());
    std::fill(target->begin() + static_cast<std::ptrdiff_t>(s.filesz), target->end(), std::byte{0});
}

}  // namespace

bool is_elf(std::span<std::byte const> image) noexcept {
    return image.size() >= SELFMAG && std::memcmp(image.data(), ELFMAG, SELFMAG) == 0;
}

LoadedKernel load_elf(GuestMemory const& memory, std::span<std::byte const> image,
                      GuestAddress lowest_allowed) {
    ReservedRange const firmware_area[] = {{GuestAddress{0}, lowest_allowed, "kvmlet's firmware area"}};
    return load_elf(memory, image, firmware_area);
}

LoadedKernel load_elf(GuestMemory const& memory, std::span<std::byte const> image,
                      std::span<ReservedRange const> reserved) {
    Elf64_Ehdr const header = read_header(image);
    auto const headers = read_program_headers(image, header);
    LoadedKernel kernel;
    std::vector<LoadSegment> segments;
    for (std::size_t i = 0; i < headers.size(); ++i) {
        if (headers[i].p_type == PT_LOAD) {
            if (auto s = check_load_segment(memory, image, headers[i], i, reserved)) segments.push_back(*s);
        } else if (headers[i].p_type == PT_NOTE) {
            kernel.notes.push_back(check_note(image, headers[i], i));
        }
    }
    if (segments.empty()) fail("no loadable segments");
    check_no_overlap(segments);
    kernel.entry = translate_entry(segments, header.e_entry);
    auto const by_start = [](LoadSegment const& a, LoadSegment const& b) { return a.paddr < b.paddr; };
    auto const by_end = [](LoadSegment const& a, LoadSegment const& b) { return a.paddr_end < b.paddr_end; };
    kernel.start = GuestAddress{std::min_element(segments.begin(), segments.end(), by_start)->paddr};
    kernel.end = GuestAddress{std::max_element(segments.begin(), segments.end(), by_end)->paddr_end};
    for (auto const& s : segments) copy_segment(memory, image, s);
    return kernel;
}

}  // namespace kvmlet::firmware
