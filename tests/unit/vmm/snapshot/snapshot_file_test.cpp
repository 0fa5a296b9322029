#include "vmm/snapshot/snapshot_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "vmm/base/error.hpp"
#include "vmm/base/state_stream.hpp"
#include "vmm/snapshot/memory_file.hpp"

namespace kvmlet::snapshot {
namespace {

std::vector<std::byte> bytes_of(std::string_view text) {
    auto b = std::as_bytes(std::span{text.data(), text.size()});
    return {b.begin(), b.end()};
}

StateFile two_sections() {
    StateFile file;
    file.add("machine", bytes_of("shape"));
    file.add("dev.serial", bytes_of("registers and a buffer"));
    return file;
}

// The one line decode() throws for these bytes (empty when it throws nothing).
std::string decode_error(std::vector<std::byte> const& bytes) {
    try {
        (void)StateFile::decode(bytes, "vm.snap");
    } catch (Error const& e) {
        return e.what();
    }
    return "";
}

void put_u32(std::vector<std::byte>& bytes, std::size_t offset, std::uint32_t value) {
    std::memcpy(bytes.data() + offset, &value, sizeof value);
}

// The file's CRC made right again after a deliberate change, so a later check is what fails.
void fix_crc(std::vector<std::byte>& bytes) {
    std::uint64_t crc = crc64(std::span{bytes}.first(bytes.size() - trailer_size));
    std::memcpy(bytes.data() + bytes.size() - trailer_size, &crc, sizeof crc);
}

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "kvmlet-snap.XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

TEST_CASE("CRC-64/XZ of the standard check string is 0x995dc9bbdf1939fa") {
    CHECK(crc64(bytes_of("123456789")) == 0x995dc9bbdf1939faULL);
    CHECK(crc64({}) == 0);
}

TEST_CASE("A state file decodes to the sections it was encoded from, in order") {
    auto bytes = two_sections().encode();
    CHECK(std::memcmp(bytes.data(), "KVMLSNAP", 8) == 0);
    StateFile back = StateFile::decode(bytes, "vm.snap");
    REQUIRE(back.sections().size() == 2);
    CHECK(back.sections()[0].name == "machine");
    CHECK(back.sections()[1].name == "dev.serial");
    CHECK(back.section("dev.serial").size() == std::string_view("registers and a buffer").size());
    CHECK_THROWS_WITH(back.section("kvm.vm"), "snapshot: no section kvm.vm");
}

TEST_CASE("A flipped bit anywhere in a state file is a CRC mismatch or a header error") {
    auto const good = two_sections().encode();
    for (std::size_t i = 0; i < good.size(); ++i) {
        auto bytes = good;
        bytes[i] ^= std::byte{0x10};
        CAPTURE(i);
        CHECK_FALSE(decode_error(bytes).empty());
    }
    auto bytes = good;
    bytes[header_size + 6] ^= std::byte{1};  // inside the first section's name
    CHECK(decode_error(bytes) == "snapshot vm.snap: CRC mismatch: the file is corrupt");
}

TEST_CASE("A truncated state file says how many of its bytes are there") {
    auto bytes = two_sections().encode();
    auto const full = bytes.size();
    bytes.resize(full - 1);
    CHECK(decode_error(bytes) ==
          fmt::format("snapshot vm.snap: truncated: {} of its {} bytes", full - 1, full));
    bytes.resize(20);
    CHECK(decode_error(bytes) == "snapshot vm.snap: truncated: 20 bytes, not even a header");
    bytes.clear();
    CHECK(decode_error(bytes) == "snapshot vm.snap: not a kvmlet snapshot (no KVMLSNAP magic)");
}

TEST_CASE("An unknown format version is refused before the CRC is looked at") {
    auto bytes = two_sections().encode();
    put_u32(bytes, 8, format_version + 1);
    CHECK(decode_error(bytes) ==
          fmt::format("snapshot vm.snap: format version {} is unknown (this kvmlet reads version {})",
                      format_version + 1, format_version));
}

TEST_CASE("Bytes after a state file's end, a wrong magic and lying section lengths are refused") {
    auto bytes = two_sections().encode();
    bytes.push_back(std::byte{0});
    CHECK(decode_error(bytes) ==
          fmt::format("snapshot vm.snap: 1 bytes after its end ({} bytes)", bytes.size() - 1));

    bytes = two_sections().encode();
    bytes[0] = std::byte{'X'};
    CHECK(decode_error(bytes) == "snapshot vm.snap: not a kvmlet snapshot (no KVMLSNAP magic)");

    // A section count larger than the sections there, with a valid CRC: the walk stops at the end.
    bytes = two_sections().encode();
    put_u32(bytes, 12, 3);
    fix_crc(bytes);
    CHECK(decode_error(bytes) == "snapshot vm.snap: section 2: bad name length");
    // A name length past the end of the file.
    bytes = two_sections().encode();
    put_u32(bytes, header_size, 0xffffffff);
    fix_crc(bytes);
    CHECK(decode_error(bytes) == "snapshot vm.snap: section 0: bad name length");
}

TEST_CASE("Section names must be printable, at most 64 characters and unique") {
    StateFile file;
    file.add("a", {});
    CHECK_THROWS_AS(file.add("a", {}), Error);
    CHECK_THROWS_AS(file.add("", {}), Error);
    CHECK_THROWS_AS(file.add("has space", {}), Error);
    CHECK_THROWS_AS(file.add(std::string(65, 'x'), {}), Error);
    CHECK_NOTHROW(file.add(std::string(64, 'x'), {}));
}

TEST_CASE("A state file written to disk reads back, and a cut copy fails with one error") {
    TempDir dir;
    auto const path = (dir.path / "vm.snap").string();
    two_sections().write(path);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(StateFile::read(path).sections().size() == 2);
    REQUIRE(::truncate(path.c_str(), st.st_size - 3) == 0);
    CHECK_THROWS_WITH(StateFile::read(path), Catch::Contains("truncated"));
    CHECK_THROWS_WITH(StateFile::read((dir.path / "missing").string()), Catch::Contains("cannot open it"));
}

TEST_CASE("A state reader refuses short sections, left-over bytes, bad flags and oversized counts") {
    StateWriter out;
    out.put(std::uint32_t{7});
    out.put_bool(true);
    out.put_optional(std::optional<std::uint8_t>{});
    out.put_vector(std::vector<std::uint16_t>{1, 2, 3});
    auto const bytes = out.take();

    StateReader in(bytes, "test");
    CHECK(in.get<std::uint32_t>() == 7);
    CHECK(in.get_bool());
    CHECK_FALSE(in.get_optional<std::uint8_t>().has_value());
    CHECK(in.get_vector<std::uint16_t>(3) == std::vector<std::uint16_t>{1, 2, 3});
    CHECK_NOTHROW(in.finish());
    CHECK_THROWS_WITH(in.get<std::uint8_t>(), "snapshot section test: ends after 17 bytes, more expected");

    StateReader bounded(bytes, "test");
    bounded.get<std::uint32_t>();
    bounded.get_bool();
    bounded.get_optional<std::uint8_t>();
    CHECK_THROWS_WITH(bounded.get_vector<std::uint16_t>(2),
                      "snapshot section test: 3 entries, at most 2 expected");

    StateReader leftover(bytes, "test");
    leftover.get<std::uint32_t>();
    CHECK_THROWS_WITH(leftover.finish(), "snapshot section test: 13 bytes left over");

    std::vector<std::byte> flag{std::byte{2}};
    StateReader bad_flag(flag, "test");
    CHECK_THROWS_WITH(bad_flag.get_bool(), "snapshot section test: a flag is neither 0 nor 1");
}

TEST_CASE("The memory file holds all of RAM, written pages as data and zero pages as holes") {
    TempDir dir;
    std::array<RamRange, 2> ranges{RamRange{GuestAddress{0}, 1 * MiB},
                                   RamRange{GuestAddress{4 * MiB}, 1 * MiB}};
    GuestMemory memory = GuestMemory::create(ranges);
    REQUIRE(memory.write(GuestAddress{0x1000}, std::uint64_t{0x1122334455667788}));
    REQUIRE(memory.write(GuestAddress{4 * MiB + 0xff000}, std::uint8_t{0xab}));  // the last page
    // A page written with zeros is data in the memfd, but a hole in the file.
    REQUIRE(memory.write(GuestAddress{0x3000}, std::uint64_t{0}));
    auto const path = (dir.path / "vm.mem").string();
    MemoryFileStats stats = write_memory_file(memory, path);
    CHECK(stats.size == 2 * MiB);
    CHECK(stats.written_bytes == 2 * 4096);

    // Mapped back privately: the same bytes; a write reaches the mapping, not the file.
    UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(file.valid());
    GuestMemory restored = GuestMemory::map_private(ranges, std::move(file), path);
    CHECK(restored.private_file());
    CHECK(restored.read<std::uint64_t>(GuestAddress{0x1000}) == 0x1122334455667788);
    CHECK(restored.read<std::uint8_t>(GuestAddress{4 * MiB + 0xff000}) == 0xab);
    CHECK(restored.read<std::uint64_t>(GuestAddress{0x3000}) == 0);
    REQUIRE(restored.write(GuestAddress{0x2000}, std::uint32_t{0xfeedf00d}));
    GuestMemory again =
        GuestMemory::map_private(ranges, UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)), path);
    CHECK(again.read<std::uint32_t>(GuestAddress{0x2000}) == 0);

    // From the restored (private) memory: its own writes are in the new file. Not over the file
    // it is mapped from.
    auto const second = (dir.path / "vm2.mem").string();
    CHECK(write_memory_file(restored, second).written_bytes == 3 * 4096);
    CHECK_THROWS_WITH(write_memory_file(restored, path),
                      Catch::Contains("this microVM's RAM is mapped from it"));
    CHECK(restored.read<std::uint64_t>(GuestAddress{0x1000}) == 0x1122334455667788);

    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(static_cast<std::uint64_t>(st.st_blocks) * 512 < 1 * MiB);  // sparse
    REQUIRE(::truncate(path.c_str(), 1 * MiB) == 0);
    CHECK_THROWS_WITH(
        GuestMemory::map_private(ranges, UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)), path),
        Catch::Contains("1048576 bytes, the snapshot's guest has 2097152"));
}

}  // namespace
}  // namespace kvmlet::snapshot
