#pragma once
// kvmlet's snapshot state file (docs/snapshot.md): a header (magic, format version, section count,
// file length), one section per component (a name and its bytes), and a CRC-64 of everything
// before it. The format version is the file's own, independent of kvmlet's release: it changes
// when a section's layout does. Guest memory is not in this file but in a file of its own.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvmlet::snapshot {

inline constexpr char magic[8] = {'K', 'V', 'M', 'L', 'S', 'N', 'A', 'P'};
inline constexpr std::uint32_t format_version = 3;
inline constexpr std::size_t header_size = 24;  // magic, version, section count, file length
inline constexpr std::size_t trailer_size = 8;  // the CRC
inline constexpr std::uint32_t max_sections = 4096;
inline constexpr std::uint32_t max_name_length = 64;

// CRC-64/XZ (ECMA-182 polynomial, reflected, all-ones init and final xor): crc64("123456789") is
// 0x995dc9bbdf1939fa.
std::uint64_t crc64(std::span<std::byte const> bytes) noexcept;

struct Section {
    std::string name;
    std::vector<std::byte> bytes;
};

class StateFile {
public:
    void add(std::string name, std::vector<std::byte> bytes);
    // The section of that name; Error ("snapshot FILE: no section NAME") when there is none.
    std::span<std::byte const> section(std::string_view name) const;
    bool has(std::string_view name) const noexcept;
    std::vector<Section> const& sections() const noexcept { return sections_; }

    std::vector<std::byte> encode() const;
    // Checks, in this order, and throws Error with one line naming `path` and what is wrong: too
    // short, magic, format version, length (truncated or trailing bytes), CRC, then every section's
    // bounds and name (unique, 1-64 printable characters).
    static StateFile decode(std::span<std::byte const> bytes, std::string_view path);

    // The whole file written (created or replaced, mode 0600, then fsync), or read. Throw Error.
    void write(std::string const& path) const;
    static StateFile read(std::string const& path);

private:
    std::vector<Section> sections_;
};

}  // namespace kvmlet::snapshot
