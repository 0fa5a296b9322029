#include "vmm/snapshot/snapshot_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/crc.hpp>
#include <cstring>
#include <optional>

#include "vmm/base/error.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet::snapshot {
namespace {

// CRC-64/XZ as Boost.CRC spells it: width, polynomial, initial value, final xor, reflected in/out.
using Crc64Xz = boost::crc_optimal<64, 0x42F0E1EBA9EA3693ULL, ~0ULL, ~0ULL, true, true>;

// A file of at most this size is read in one piece (a snapshot of 32 vCPUs is well under 1 MiB).
constexpr std::uint64_t max_file_size = 64ULL << 20;

// Appends bytes to a buffer sized up front (GCC 12 warns wrongly about vector::insert of bytes).
class Appender {
public:
    explicit Appender(std::size_t size) : out_(size) {}
    void bytes(void const* data, std::size_t length) {
        if (length != 0) std::memcpy(out_.data() + at_, data, length);
        at_ += length;
    }
    template <class T>
    void value(T v) {
        bytes(&v, sizeof v);
    }
    std::vector<std::byte>& out() noexcept { return out_; }

private:
    std::vector<std::byte> out_;
    std::size_t at_ = 0;
};

// Reads a T at `offset` when it fits before `end`; the caller turns nullopt into its error.
template <class T>
std::optional<T> peek(std::span<std::byte const> bytes, std::size_t offset, std::size_t end) {
    if (offset > end || sizeof(T) > end - offset) return std::nullopt;
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

bool valid_name(std::string_view name) {
    return !name.empty() && name.size() <= max_name_length &&
           std::all_of(name.begin(), name.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

}  // namespace

std::uint64_t crc64(std::span<std::byte const> bytes) noexcept {
    Crc64Xz crc;
    crc.process_bytes(bytes.data(), bytes.size());
    return crc.checksum();
}

void StateFile::add(std::string name, std::vector<std::byte> bytes) {
    if (!valid_name(name) || has(name))
        throw Error(fmt::format("snapshot: bad or repeated section name '{}'", name));
    sections_.push_back({std::move(name), std::move(bytes)});
}

bool StateFile::has(std::string_view name) const noexcept {
    return std::any_of(sections_.begin(), sections_.end(), [&](Section const& s) { return s.name == name; });
}

std::span<std::byte const> StateFile::section(std::string_view name) const {
    for (auto const& s : sections_)
        if (s.name == name) return s.bytes;
    throw Error(fmt::format("snapshot: no section {}", name));
}

std::vector<std::byte> StateFile::encode() const {
    std::uint64_t length = header_size + trailer_size;
    for (auto const& section : sections_) length += 4 + section.name.size() + 8 + section.bytes.size();
    Appender out(static_cast<std::size_t>(length));
    out.bytes(magic, sizeof magic);
    out.value(format_version);
    out.value(static_cast<std::uint32_t>(sections_.size()));
    out.value(length);
    for (auto const& section : sections_) {
        out.value(static_cast<std::uint32_t>(section.name.size()));
        out.bytes(section.name.data(), section.name.size());
        out.value(static_cast<std::uint64_t>(section.bytes.size()));
        out.bytes(section.bytes.data(), section.bytes.size());
    }
    out.value(crc64(std::span{out.out()}.first(static_cast<std::size_t>(length) - trailer_size)));
    return std::move(out.out());
}

StateFile StateFile::decode(std::span<std::byte const> bytes, std::string_view path) {
    auto fail = [&](std::string const& why) { return Error(fmt::format("snapshot {}: {}", path, why)); };
    if (bytes.size() < sizeof magic || std::memcmp(bytes.data(), magic, sizeof magic) != 0)
        throw fail("not a kvmlet snapshot (no KVMLSNAP magic)");
    if (bytes.size() < header_size + trailer_size)
        throw fail(fmt::format("truncated: {} bytes, not even a header", bytes.size()));
    auto const version = *peek<std::uint32_t>(bytes, 8, bytes.size());
    if (version < format_version)
        throw fail(
            fmt::format("format version {} is an older kvmlet's (this kvmlet reads version {} only): "
                        "take the snapshot again",
                        version, format_version));
    if (version != format_version)
        throw fail(fmt::format("format version {} is unknown (this kvmlet reads version {})", version,
                               format_version));
    auto const count = *peek<std::uint32_t>(bytes, 12, bytes.size());
    auto const length = *peek<std::uint64_t>(bytes, 16, bytes.size());
    if (length > bytes.size()) throw fail(fmt::format("truncated: {} of its {} bytes", bytes.size(), length));
    if (length < bytes.size())
        throw fail(fmt::format("{} bytes after its end ({} bytes)", bytes.size() - length, length));
    std::size_t const end = bytes.size() - trailer_size;
    if (crc64(bytes.first(end)) != *peek<std::uint64_t>(bytes, end, bytes.size()))
        throw fail("CRC mismatch: the file is corrupt");
    if (count > max_sections) throw fail(fmt::format("{} sections, at most {}", count, max_sections));
    StateFile file;
    std::size_t offset = header_size;
    for (std::uint32_t i = 0; i < count; ++i) {
        auto name_length = peek<std::uint32_t>(bytes, offset, end);
        if (!name_length || *name_length > max_name_length || *name_length > end - offset - 4)
            throw fail(fmt::format("section {}: bad name length", i));
        std::string name(reinterpret_cast<char const*>(bytes.data() + offset + 4), *name_length);
        offset += 4 + *name_length;
        auto size = peek<std::uint64_t>(bytes, offset, end);
        if (!size || *size > end - offset - 8) throw fail(fmt::format("section {}: bad length", name));
        offset += 8;
        if (!valid_name(name) || file.has(name))
            throw fail(fmt::format("section {}: bad or repeated name", i));
        auto data = bytes.subspan(offset, static_cast<std::size_t>(*size));
        file.sections_.push_back({std::move(name), {data.begin(), data.end()}});
        offset += static_cast<std::size_t>(*size);
    }
    if (offset != end) throw fail(fmt::format("{} bytes after the last section", end - offset));
    return file;
}

void StateFile::write(std::string const& path) const {
    auto bytes = encode();
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) throw system_error(fmt::format("snapshot {}: cannot create it", path));
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw system_error(fmt::format("snapshot {}: write", path));
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) throw system_error(fmt::format("snapshot {}: fsync", path));
}

StateFile StateFile::read(std::string const& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) throw system_error(fmt::format("snapshot {}: cannot open it", path));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw system_error(fmt::format("snapshot {}: fstat", path));
    if (!S_ISREG(st.st_mode)) throw Error(fmt::format("snapshot {}: not a regular file", path));
    auto const size = static_cast<std::uint64_t>(st.st_size);
    if (size > max_file_size) throw Error(fmt::format("snapshot {}: {} bytes is too large", path, size));
    std::vector<std::byte> bytes(static_cast<std::size_t>(size));
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::pread(fd.get(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw system_error(fmt::format("snapshot {}: read", path));
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
    }
    bytes.resize(done);
    return decode(bytes, path);
}

}  // namespace kvmlet::snapshot
