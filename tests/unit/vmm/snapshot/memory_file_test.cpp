// Diff memory files (docs/snapshot.md): only the dirty pages, and merged onto their base Full file
// they are a Full file of the later RAM.
#include "vmm/snapshot/memory_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "vmm/base/error.hpp"

namespace kvmlet::snapshot {
namespace {

constexpr std::uint64_t page = 4096;

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "kvmlet-diff.XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string file(char const* name) const { return (path / name).string(); }
};

std::array<RamRange, 2> const ranges{RamRange{GuestAddress{0}, 1 * MiB},
                                     RamRange{GuestAddress{4 * MiB}, 1 * MiB}};

// The VMM's marks alone, as a DirtyPages (take_dirty_pages adds KVM's log, which needs a VM).
DirtyPages taken(GuestMemory const& memory) {
    DirtyPages pages;
    for (std::size_t i = 0; i < memory.regions().size(); ++i)
        pages.regions.push_back(memory.take_dirty_pages(i));
    return pages;
}

// The file's data extents as [start, end) pairs.
std::vector<std::pair<off_t, off_t>> data_extents(std::string const& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(fd.valid());
    std::vector<std::pair<off_t, off_t>> out;
    off_t const size = ::lseek(fd.get(), 0, SEEK_END);
    for (off_t at = ::lseek(fd.get(), 0, SEEK_DATA); at >= 0 && at < size;
         at = ::lseek(fd.get(), at, SEEK_DATA)) {
        off_t const end = ::lseek(fd.get(), at, SEEK_HOLE);
        out.emplace_back(at, end);
        at = end;
    }
    return out;
}

bool same_ram(GuestMemory const& a, GuestMemory const& b) {
    for (std::size_t i = 0; i < a.regions().size(); ++i)
        if (std::memcmp(a.regions()[i].host, b.regions()[i].host, a.regions()[i].size) != 0) return false;
    return true;
}

GuestMemory mapped(std::string const& path) {
    return GuestMemory::map_private(ranges, UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)), path);
}

}  // namespace

TEST_CASE("A Diff memory file holds exactly the dirty pages, zeroed ones too, and the rest are holes") {
    TempDir dir;
    GuestMemory memory = GuestMemory::create(ranges);
    memory.track_dirty_pages();
    REQUIRE(memory.write(GuestAddress{0x1000}, std::uint64_t{0x1111}));
    REQUIRE(memory.write(GuestAddress{0x3000}, std::uint64_t{0x3333}));
    REQUIRE(write_memory_file(memory, dir.file("base.mem")).written_bytes == 2 * page);
    (void)taken(memory);  // the Full snapshot's take: the Diff has what changes after it

    REQUIRE(memory.write(GuestAddress{0x3000}, std::uint64_t{0}));  // zeroed: must replace the base's
    REQUIRE(memory.write(GuestAddress{0x4000}, std::uint64_t{0x4444}));
    REQUIRE(memory.write(GuestAddress{4 * MiB + 0xff000}, std::uint8_t{0xab}));  // the last page
    DirtyPages const dirty = taken(memory);
    CHECK(dirty.count() == 3);
    MemoryFileStats const stats = write_memory_file(memory, dir.file("diff.mem"), &dirty);
    CHECK(stats.size == 2 * MiB);
    CHECK(stats.written_bytes == 3 * page);
    using Extents = std::vector<std::pair<off_t, off_t>>;
    CHECK(data_extents(dir.file("diff.mem")) ==
          Extents{{0x3000, 0x5000}, {static_cast<off_t>(2 * MiB - page), static_cast<off_t>(2 * MiB)}});

    // Merged onto the base, it is RAM as it is now; the Diff file is not changed.
    CHECK(merge_memory_file(dir.file("base.mem"), dir.file("diff.mem")) == 3 * page);
    CHECK(same_ram(mapped(dir.file("base.mem")), memory));
    CHECK(data_extents(dir.file("diff.mem")).size() == 2);
}

TEST_CASE("A Diff with nothing dirty is all holes, and merging it changes nothing") {
    TempDir dir;
    GuestMemory memory = GuestMemory::create(ranges);
    memory.track_dirty_pages();
    REQUIRE(memory.write(GuestAddress{0x1000}, std::uint64_t{7}));
    (void)write_memory_file(memory, dir.file("base.mem"));
    (void)taken(memory);
    DirtyPages const none = taken(memory);
    CHECK(write_memory_file(memory, dir.file("diff.mem"), &none).written_bytes == 0);
    CHECK(data_extents(dir.file("diff.mem")).empty());
    CHECK(merge_memory_file(dir.file("base.mem"), dir.file("diff.mem")) == 0);
    CHECK(same_ram(mapped(dir.file("base.mem")), memory));
}

TEST_CASE("Merging refuses files of different sizes, one file twice, a missing file and a directory") {
    TempDir dir;
    GuestMemory memory = GuestMemory::create(ranges);
    (void)write_memory_file(memory, dir.file("a.mem"));
    (void)write_memory_file(memory, dir.file("b.mem"));
    REQUIRE(::truncate(dir.file("b.mem").c_str(), 1 * MiB) == 0);
    CHECK_THROWS_WITH(merge_memory_file(dir.file("a.mem"), dir.file("b.mem")),
                      Catch::Contains("not a Diff of this guest"));
    CHECK_THROWS_WITH(merge_memory_file(dir.file("a.mem"), dir.file("a.mem")),
                      Catch::Contains("the same file"));
    CHECK_THROWS_WITH(merge_memory_file(dir.file("a.mem"), dir.file("none.mem")),
                      Catch::Contains("cannot open"));
    CHECK_THROWS_WITH(merge_memory_file(dir.file("a.mem"), dir.path.string()),
                      Catch::Contains("not a regular file"));
}

}  // namespace kvmlet::snapshot
