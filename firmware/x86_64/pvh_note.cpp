#include "firmware/x86_64/pvh_note.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "vmm/base/error.hpp"

namespace kvmlet::x86_64 {
namespace {

// ELF-64 Object File Format 1.5 §"Note Sections": a header, then the name and the description,
// each padded to a 4-byte boundary (what Linux's ELFNOTE macro and the kernel's PT_NOTE emit).
struct NoteHeader {
    std::uint32_t namesz;  // including the terminating NUL
    std::uint32_t descsz;
    std::uint32_t type;
};
static_assert(sizeof(NoteHeader) == 12);
constexpr std::uint64_t note_alignment = 4;

// Xen include/public/elfnote.h.
constexpr std::uint32_t xen_elfnote_phys32_entry = 18;
constexpr std::array<char, 4> xen_note_name{'X', 'e', 'n', '\0'};

std::uint64_t align_up(std::uint64_t size) {
    return (size + note_alignment - 1) & ~(note_alignment - 1);
}

// One note, its name and description checked to lie inside the segment.
struct Note {
    NoteHeader header;
    std::span<std::byte const> name;
    std::span<std::byte const> desc;
    std::uint64_t size;  // header, padded name and padded description, clamped to the segment
};

std::optional<GuestAddress> pvh_entry(Note const& note) {
    if (note.header.type != xen_elfnote_phys32_entry || note.name.size() != xen_note_name.size() ||
        std::memcmp(note.name.data(), xen_note_name.data(), xen_note_name.size()) != 0)
        return std::nullopt;
    std::uint64_t entry = 0;
    if (note.desc.size() != 4 && note.desc.size() != 8)
        throw Error(fmt::format("kernel: malformed PVH note: a {}-byte entry address, expected 4 or 8",
                                note.desc.size()));
    std::memcpy(&entry, note.desc.data(), note.desc.size());
    if (entry > UINT32_MAX)
        throw Error(fmt::format("kernel: malformed PVH note: entry {:#x} is not a 32-bit address", entry));
    return GuestAddress{entry};
}

// `rest` is what remains of the note segment from this note on.
Note read_note(std::span<std::byte const> rest, std::uint64_t file_offset) {
    if (rest.size() < sizeof(NoteHeader))
        throw Error(
            fmt::format("kernel: malformed ELF note at file offset {:#x}: {} bytes, too short for a header",
                        file_offset, rest.size()));
    NoteHeader header;
    std::memcpy(&header, rest.data(), sizeof header);
    std::uint64_t const body = rest.size() - sizeof header;
    std::uint64_t const name_padded = align_up(header.namesz);  // at most 2^32 + 3: no overflow
    if (name_padded > body || header.descsz > body - name_padded)
        throw Error(
            fmt::format("kernel: malformed {} note at file offset {:#x}: name ({} bytes) and description "
                        "({} bytes) run past the end of its segment",
                        header.type == xen_elfnote_phys32_entry ? "PVH" : "ELF", file_offset, header.namesz,
                        header.descsz));
    std::uint64_t const end =
        std::min<std::uint64_t>(sizeof header + name_padded + align_up(header.descsz), rest.size());
    return Note{header, rest.subspan(sizeof header, header.namesz),
                rest.subspan(sizeof header + name_padded, header.descsz), end};
}

}  // namespace

std::optional<GuestAddress> find_pvh_entry(std::span<std::byte const> image,
                                           std::span<firmware::ImageRange const> notes) {
    for (auto const& range : notes) {
        auto const segment = image.subspan(range.offset, range.size);  // checked by load_elf
        // Every note takes at least a header, which bounds the walk.
        std::uint64_t at = 0;
        for (std::size_t n = 0; n <= segment.size() / sizeof(NoteHeader) && at < segment.size(); ++n) {
            Note const note = read_note(segment.subspan(at), range.offset + at);
            if (auto entry = pvh_entry(note)) return entry;
            at += note.size;
        }
    }
    return std::nullopt;
}

}  // namespace kvmlet::x86_64
