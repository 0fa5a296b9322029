#include "firmware/acpi/aml.hpp"

#include <fmt/format.h>

#include <limits>

#include "vmm/base/error.hpp"

namespace kvmlet::firmware::acpi::aml {
namespace {

// §20.3 "AML Byte Stream Byte Values".
constexpr std::uint8_t zero_op = 0x00;
constexpr std::uint8_t one_op = 0x01;
constexpr std::uint8_t name_op = 0x08;
constexpr std::uint8_t byte_prefix = 0x0a;
constexpr std::uint8_t word_prefix = 0x0b;
constexpr std::uint8_t dword_prefix = 0x0c;
constexpr std::uint8_t string_prefix = 0x0d;
constexpr std::uint8_t qword_prefix = 0x0e;
constexpr std::uint8_t scope_op = 0x10;
constexpr std::uint8_t buffer_op = 0x11;
constexpr std::uint8_t package_op = 0x12;
constexpr std::uint8_t method_op = 0x14;
constexpr std::uint8_t dual_name_prefix = 0x2e;
constexpr std::uint8_t multi_name_prefix = 0x2f;
constexpr std::uint8_t ext_op_prefix = 0x5b;
constexpr std::uint8_t device_op = 0x82;  // after ext_op_prefix
constexpr std::uint8_t notify_op = 0x86;
constexpr std::uint8_t root_char = '\\';
constexpr std::uint8_t parent_prefix_char = '^';
constexpr std::uint8_t null_name = 0x00;
constexpr std::uint8_t return_op = 0xa4;
constexpr std::uint8_t ones_op = 0xff;

// §20.2.4: one byte holds lengths up to 63; with n (1..3) more bytes, the lead byte's bits 7:6 hold
// n, its bits 3:0 the low nibble, the next bytes the rest: up to 2^(4 + 8n) - 1.
constexpr std::size_t pkg_length_one_byte_max = 0x3f;
constexpr std::size_t pkg_length_max = (std::size_t{1} << 28) - 1;
constexpr std::size_t name_seg_size = 4;
constexpr std::size_t package_max_elements = 0xff;
constexpr std::uint8_t method_max_args = 7;
constexpr std::size_t eisa_id_length = 7;

void append(Bytes& out, Bytes const& more) {
    out.insert(out.end(), more.begin(), more.end());
}

template <class T>
void append_le(Bytes& out, T value) {
    for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

// opcode(s), PkgLength, body.
Bytes with_pkg_length(Bytes opcode, Bytes const& body) {
    append(opcode, pkg_length(body.size()));
    append(opcode, body);
    return opcode;
}

Bytes concat(std::vector<Bytes> const& terms) {
    Bytes out;
    for (auto const& term : terms) append(out, term);
    return out;
}

bool lead_name_char(char c) {
    return (c >= 'A' && c <= 'Z') || c == '_';
}

bool name_char(char c) {
    return lead_name_char(c) || (c >= '0' && c <= '9');
}

[[noreturn]] void bad_name(std::string_view path, char const* why) {
    throw Error(fmt::format("aml: bad name \"{}\": {}", path, why));
}

// §20.2.2 NameSeg: a lead character, up to three more, padded with '_' to four.
void append_name_seg(Bytes& out, std::string_view seg, std::string_view path) {
    if (seg.empty() || seg.size() > name_seg_size) bad_name(path, "a segment is not 1 to 4 characters");
    if (!lead_name_char(seg[0])) bad_name(path, "a segment starts with other than A-Z or _");
    for (char c : seg)
        if (!name_char(c)) bad_name(path, "a character other than A-Z, 0-9 or _");
    for (char c : seg) out.push_back(static_cast<std::uint8_t>(c));
    out.insert(out.end(), name_seg_size - seg.size(), '_');
}

std::vector<std::string_view> split_segments(std::string_view names) {
    std::vector<std::string_view> segs;
    while (!names.empty()) {
        auto const dot = names.find('.');
        segs.push_back(names.substr(0, dot));
        if (dot == std::string_view::npos) break;
        names.remove_prefix(dot + 1);
        if (names.empty()) segs.push_back(names);  // a trailing dot: an empty segment
    }
    return segs;
}

}  // namespace

Bytes pkg_length(std::size_t body) {
    if (body + 1 <= pkg_length_one_byte_max) return {static_cast<std::uint8_t>(body + 1)};
    for (std::size_t extra = 1; extra <= 3; ++extra) {
        std::size_t const total = body + 1 + extra;
        if (total >= (std::size_t{1} << (4 + 8 * extra))) continue;
        Bytes out{static_cast<std::uint8_t>((extra << 6) | (total & 0x0f))};
        for (std::size_t i = 0; i < extra; ++i)
            out.push_back(static_cast<std::uint8_t>(total >> (4 + 8 * i)));
        return out;
    }
    throw Error(
        fmt::format("aml: a {}-byte package is longer than PkgLength encodes ({})", body, pkg_length_max));
}

Bytes name_string(std::string_view path) {
    Bytes out;
    std::string_view names = path;
    if (!names.empty() && names.front() == '\\') {
        out.push_back(root_char);
        names.remove_prefix(1);
    } else {
        while (!names.empty() && names.front() == '^') {
            out.push_back(parent_prefix_char);
            names.remove_prefix(1);
        }
    }
    auto const segs = split_segments(names);
    if (segs.empty() && out.empty()) bad_name(path, "empty");
    if (segs.size() > package_max_elements) bad_name(path, "more than 255 segments");
    if (segs.empty()) out.push_back(null_name);
    if (segs.size() == 2) out.push_back(dual_name_prefix);
    if (segs.size() > 2) {
        out.push_back(multi_name_prefix);
        out.push_back(static_cast<std::uint8_t>(segs.size()));
    }
    for (auto seg : segs) append_name_seg(out, seg, path);
    return out;
}

Bytes zero() {
    return {zero_op};
}

Bytes one() {
    return {one_op};
}

Bytes ones() {
    return {ones_op};
}

Bytes byte_const(std::uint8_t value) {
    return {byte_prefix, value};
}

Bytes word_const(std::uint16_t value) {
    Bytes out{word_prefix};
    append_le(out, value);
    return out;
}

Bytes dword_const(std::uint32_t value) {
    Bytes out{dword_prefix};
    append_le(out, value);
    return out;
}

Bytes qword_const(std::uint64_t value) {
    Bytes out{qword_prefix};
    append_le(out, value);
    return out;
}

Bytes integer(std::uint64_t value) {
    if (value == 0) return zero();
    if (value == 1) return one();
    if (value == std::numeric_limits<std::uint64_t>::max()) return ones();
    if (value <= std::numeric_limits<std::uint8_t>::max())
        return byte_const(static_cast<std::uint8_t>(value));
    if (value <= std::numeric_limits<std::uint16_t>::max())
        return word_const(static_cast<std::uint16_t>(value));
    if (value <= std::numeric_limits<std::uint32_t>::max())
        return dword_const(static_cast<std::uint32_t>(value));
    return qword_const(value);
}

Bytes string(std::string_view text) {
    Bytes out{string_prefix};
    for (char c : text) {
        if (c <= 0) throw Error(fmt::format("aml: string \"{}\" has a byte outside 0x01..0x7f", text));
        out.push_back(static_cast<std::uint8_t>(c));
    }
    out.push_back(0);
    return out;
}

Bytes buffer(std::span<std::uint8_t const> bytes) {
    Bytes body = integer(bytes.size());
    body.insert(body.end(), bytes.begin(), bytes.end());
    return with_pkg_length({buffer_op}, body);
}

Bytes package(std::vector<Bytes> const& elements) {
    if (elements.size() > package_max_elements)
        throw Error(
            fmt::format("aml: a package of {} elements; at most {}", elements.size(), package_max_elements));
    Bytes body{static_cast<std::uint8_t>(elements.size())};
    append(body, concat(elements));
    return with_pkg_length({package_op}, body);
}

std::uint32_t eisa_id_value(std::string_view id) {
    auto const hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    bool valid = id.size() == eisa_id_length;
    for (std::size_t i = 0; valid && i < eisa_id_length; ++i)
        valid = i < 3 ? (id[i] >= 'A' && id[i] <= 'Z') : hex(id[i]) >= 0;
    if (!valid)
        throw Error(fmt::format("aml: \"{}\" is not an EISA ID (three letters A-Z, four hex digits)", id));
    // Bytes in memory: the letters packed 5 bits each ('A' = 1) into a big-endian 16-bit word with
    // bit 15 clear, then the product number as a big-endian 16-bit word.
    auto const letter = [&](std::size_t i) { return static_cast<std::uint32_t>(id[i] - '@'); };
    std::uint32_t const vendor = letter(0) << 10 | letter(1) << 5 | letter(2);
    std::uint32_t product = 0;
    for (std::size_t i = 3; i < eisa_id_length; ++i)
        product = product << 4 | static_cast<std::uint32_t>(hex(id[i]));
    return (vendor >> 8) | (vendor & 0xff) << 8 | (product >> 8) << 16 | (product & 0xff) << 24;
}

Bytes eisa_id(std::string_view id) {
    return dword_const(eisa_id_value(id));
}

Bytes name(std::string_view path, Bytes const& object) {
    Bytes out{name_op};
    append(out, name_string(path));
    append(out, object);
    return out;
}

Bytes scope(std::string_view path, std::vector<Bytes> const& terms) {
    Bytes body = name_string(path);
    append(body, concat(terms));
    return with_pkg_length({scope_op}, body);
}

Bytes device(std::string_view path, std::vector<Bytes> const& terms) {
    Bytes body = name_string(path);
    append(body, concat(terms));
    return with_pkg_length({ext_op_prefix, device_op}, body);
}

Bytes method(std::string_view path, std::uint8_t args, std::vector<Bytes> const& terms) {
    if (args > method_max_args) throw Error(fmt::format("aml: a method of {} arguments; at most 7", args));
    Bytes body = name_string(path);
    body.push_back(args);  // §20.2.5.2 MethodFlags: bits 2:0 ArgCount, SerializeFlag and SyncLevel 0
    append(body, concat(terms));
    return with_pkg_length({method_op}, body);
}

Bytes notify(std::string_view path, std::uint8_t value) {
    Bytes out{notify_op};
    append(out, name_string(path));
    append(out, integer(value));
    return out;
}

Bytes return_value(Bytes const& value) {
    Bytes out{return_op};
    append(out, value);
    return out;
}

}  // namespace kvmlet::firmware::acpi::aml
