#include "vmm/memory/guest_memory.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <utility>
#include <vector>

#include "vmm/base/error.hpp"

namespace kvmlet {
namespace {

// Two small regions with a gap: [0, 64 KiB) and [1 MiB, 1 MiB + 64 KiB).
constexpr std::uint64_t low_size = 64 * KiB;
constexpr GuestAddress high_start{1 * MiB};
constexpr std::uint64_t high_size = 64 * KiB;

GuestMemory two_regions() {
    std::array<RamRange, 2> ranges{RamRange{GuestAddress{0}, low_size}, RamRange{high_start, high_size}};
    return GuestMemory::create(ranges);
}

void create(std::vector<RamRange> const& ranges) {
    (void)GuestMemory::create(ranges);
}

}  // namespace

TEST_CASE("guest memory has the regions it was asked for, backed by one memfd of the total size") {
    auto mem = two_regions();
    REQUIRE(mem.regions().size() == 2);
    CHECK(mem.regions()[0].start == GuestAddress{0});
    CHECK(mem.regions()[0].size == low_size);
    CHECK(mem.regions()[0].file_offset == 0);
    CHECK(mem.regions()[1].start == high_start);
    CHECK(mem.regions()[1].size == high_size);
    CHECK(mem.regions()[1].file_offset == low_size);
    CHECK(mem.total_size() == low_size + high_size);

    struct stat st {};
    REQUIRE(::fstat(mem.memfd(), &st) == 0);
    CHECK(static_cast<std::uint64_t>(st.st_size) == low_size + high_size);
}

TEST_CASE("a value written to guest memory reads back, in both regions") {
    auto mem = two_regions();
    CHECK(mem.write(GuestAddress{0x10}, std::uint64_t{0x1122'3344'5566'7788}));
    CHECK(mem.write(GuestAddress{high_start.value + 0x20}, std::uint32_t{0xdead'beef}));
    CHECK(mem.read<std::uint64_t>(GuestAddress{0x10}) == std::uint64_t{0x1122'3344'5566'7788});
    CHECK(mem.read<std::uint32_t>(GuestAddress{high_start.value + 0x20}) == std::uint32_t{0xdead'beef});
    // Fresh RAM is zero.
    CHECK(mem.read<std::uint64_t>(GuestAddress{0x1000}) == std::uint64_t{0});
}

TEST_CASE("the high region is stored after the low one in the memfd") {
    auto mem = two_regions();
    REQUIRE(mem.write(GuestAddress{high_start.value + 4}, std::uint8_t{0xab}));
    std::uint8_t byte = 0;
    REQUIRE(::pread(mem.memfd(), &byte, 1, static_cast<off_t>(low_size + 4)) == 1);
    CHECK(byte == 0xab);
}

TEST_CASE("the last byte of each region is accessible and the byte after it is not") {
    auto mem = two_regions();
    GuestAddress low_last{low_size - 1};
    GuestAddress high_last{high_start.value + high_size - 1};

    CHECK(mem.write(low_last, std::uint8_t{0x42}));
    CHECK(mem.read<std::uint8_t>(low_last) == std::uint8_t{0x42});
    CHECK(mem.write(high_last, std::uint8_t{0x43}));
    CHECK(mem.read<std::uint8_t>(high_last) == std::uint8_t{0x43});

    CHECK_FALSE(mem.read<std::uint8_t>(GuestAddress{low_size}));
    CHECK_FALSE(mem.write(GuestAddress{low_size}, std::uint8_t{1}));
    CHECK_FALSE(mem.read<std::uint8_t>(GuestAddress{high_start.value + high_size}));
    CHECK_FALSE(mem.write(GuestAddress{high_start.value + high_size}, std::uint8_t{1}));
}

TEST_CASE("an access that straddles the end of a region fails and changes nothing") {
    auto mem = two_regions();
    CHECK_FALSE(mem.write(GuestAddress{low_size - 2}, std::uint32_t{0xffff'ffff}));
    CHECK(mem.read<std::uint16_t>(GuestAddress{low_size - 2}) == std::uint16_t{0});
    CHECK_FALSE(mem.read<std::uint32_t>(GuestAddress{high_start.value + high_size - 3}));
    CHECK(mem.read<std::uint32_t>(GuestAddress{high_start.value + high_size - 4}));
}

TEST_CASE("a slice ending exactly at the end of a region is allowed, one byte longer is not") {
    auto mem = two_regions();
    auto whole = mem.slice(GuestAddress{0}, low_size);
    REQUIRE(whole);
    CHECK(whole->size() == low_size);
    CHECK(whole->data() == mem.regions()[0].host);
    CHECK_FALSE(mem.slice(GuestAddress{0}, low_size + 1));

    auto tail = mem.slice(GuestAddress{high_start.value + high_size - 16}, 16);
    REQUIRE(tail);
    CHECK(tail->data() == mem.regions()[1].host + high_size - 16);
    CHECK_FALSE(mem.slice(GuestAddress{high_start.value + high_size - 16}, 17));
}

TEST_CASE("a zero-length slice at the end of a region is allowed, one past the end is not") {
    auto mem = two_regions();
    auto at_end = mem.slice(GuestAddress{low_size}, 0);
    REQUIRE(at_end);
    CHECK(at_end->empty());
    CHECK(mem.contains(GuestAddress{high_start.value + high_size}, 0));
    CHECK_FALSE(mem.contains(GuestAddress{low_size + 1}, 0));
    CHECK_FALSE(mem.contains(GuestAddress{high_start.value + high_size + 1}, 0));
}

TEST_CASE("a length that makes addr + len overflow is rejected") {
    auto mem = two_regions();
    CHECK_FALSE(mem.slice(GuestAddress{0x10}, UINT64_MAX));
    CHECK_FALSE(mem.slice(GuestAddress{0x10}, UINT64_MAX - 0xf));  // wraps to exactly 0
    CHECK_FALSE(mem.slice(GuestAddress{high_start.value + 1}, UINT64_MAX - high_start.value));
    CHECK_FALSE(mem.slice(GuestAddress{UINT64_MAX}, 2));
    CHECK_FALSE(mem.slice(GuestAddress{UINT64_MAX}, 0));
}

TEST_CASE("an access spanning the gap between two regions fails") {
    auto mem = two_regions();
    // From the last bytes of the low region to the first of the high one.
    CHECK_FALSE(mem.slice(GuestAddress{low_size - 8}, high_start.value - low_size + 16));
    CHECK_FALSE(mem.slice(GuestAddress{0}, high_start.value + high_size));
    CHECK_FALSE(mem.read<std::uint64_t>(GuestAddress{high_start.value - 4}));
    CHECK_FALSE(mem.read<std::uint8_t>(GuestAddress{low_size + 0x1000}));  // inside the gap
}

TEST_CASE("read_bytes and write_bytes copy whole buffers and refuse partial ones") {
    auto mem = two_regions();
    std::array<std::byte, 4> in{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    REQUIRE(mem.write_bytes(GuestAddress{low_size - 4}, in));
    std::array<std::byte, 4> out{};
    REQUIRE(mem.read_bytes(GuestAddress{low_size - 4}, out));
    CHECK(out == in);

    std::array<std::byte, 4> untouched{std::byte{9}, std::byte{9}, std::byte{9}, std::byte{9}};
    CHECK_FALSE(mem.read_bytes(GuestAddress{low_size - 3}, untouched));
    CHECK(untouched[0] == std::byte{9});
}

TEST_CASE("memory ranges must be non-empty, page-aligned, sorted and non-overlapping") {
    CHECK_THROWS_AS(create({}), Error);
    CHECK_THROWS_AS(create({{GuestAddress{0}, 0}}), Error);
    CHECK_THROWS_AS(create({{GuestAddress{0x800}, 4 * KiB}}), Error);  // start unaligned
    CHECK_THROWS_AS(create({{GuestAddress{0}, 4 * KiB + 1}}), Error);  // size unaligned
    CHECK_THROWS_AS(create({{GuestAddress{0}, 64 * KiB}, {GuestAddress{32 * KiB}, 64 * KiB}}), Error);
    CHECK_THROWS_AS(create({{GuestAddress{0}, 64 * KiB}, {GuestAddress{0}, 64 * KiB}}), Error);
    CHECK_THROWS_AS(create({{GuestAddress{1 * MiB}, 64 * KiB}, {GuestAddress{0}, 64 * KiB}}),
                    Error);  // unsorted
    CHECK_THROWS_AS(create({{GuestAddress{0}, 64 * KiB}, {GuestAddress{1 * MiB}, 0}}), Error);
    CHECK_THROWS_AS(create({{GuestAddress{UINT64_MAX - 4 * KiB + 1}, 8 * KiB}}), Error);       // wraps
    CHECK_NOTHROW(create({{GuestAddress{0}, 64 * KiB}, {GuestAddress{64 * KiB}, 64 * KiB}}));  // adjacent
}

TEST_CASE("moving guest memory transfers the mappings and the memfd") {
    auto a = two_regions();
    REQUIRE(a.write(GuestAddress{0x100}, std::uint32_t{0x1234'5678}));
    int fd = a.memfd();
    std::byte* host = a.regions()[0].host;

    GuestMemory b(std::move(a));
    CHECK(b.memfd() == fd);
    REQUIRE(b.regions().size() == 2);
    CHECK(b.regions()[0].host == host);
    CHECK(b.read<std::uint32_t>(GuestAddress{0x100}) == std::uint32_t{0x1234'5678});
    CHECK(a.regions().empty());  // NOLINT(bugprone-use-after-move): a moved-from GuestMemory is empty
    CHECK(a.memfd() < 0);
    CHECK_FALSE(a.read<std::uint8_t>(GuestAddress{0}));

    auto c = two_regions();
    c = std::move(b);
    CHECK(c.memfd() == fd);
    CHECK(c.read<std::uint32_t>(GuestAddress{0x100}) == std::uint32_t{0x1234'5678});
    CHECK(b.regions().empty());  // NOLINT(bugprone-use-after-move)
    CHECK(c.total_size() == low_size + high_size);
}

TEST_CASE("dirty tracking marks the pages the VMM writes or slices, and a take clears them") {
    auto mem = two_regions();
    CHECK_FALSE(mem.tracks_dirty_pages());
    REQUIRE(mem.write(GuestAddress{0x1000}, std::uint64_t{1}));  // before tracking: not marked
    mem.track_dirty_pages();
    CHECK(mem.tracks_dirty_pages());
    CHECK(mem.take_dirty_pages(0) == std::vector<std::uint64_t>{0});

    REQUIRE(mem.write(GuestAddress{0x2ffc}, std::uint64_t{2}));            // straddles pages 2 and 3
    REQUIRE(mem.write_bytes(GuestAddress{0x5000}, {}));                    // empty: marks nothing
    REQUIRE(mem.slice(GuestAddress{high_start.value + 15 * 4096}, 4096));  // the high region's last page
    // Reads and bounds checks mark nothing; a refused write marks nothing.
    CHECK(mem.read<std::uint64_t>(GuestAddress{0x7000}));
    CHECK(mem.contains(GuestAddress{0x8000}, 4096));
    CHECK_FALSE(mem.write(GuestAddress{low_size - 2}, std::uint32_t{3}));

    CHECK(mem.take_dirty_pages(0) == std::vector<std::uint64_t>{0b1100});
    auto high = mem.take_dirty_pages(1);
    CHECK(high == std::vector<std::uint64_t>{std::uint64_t{1} << 15});
    CHECK(mem.take_dirty_pages(0) == std::vector<std::uint64_t>{0});  // cleared by the take
    CHECK(mem.take_dirty_pages(2).empty());                           // no such region

    mem.mark_dirty_pages(1, high);  // given back, as after a failed snapshot
    CHECK(mem.take_dirty_pages(1) == high);
}

TEST_CASE("guest memory moved keeps its dirty marks") {
    auto mem = two_regions();
    mem.track_dirty_pages();
    REQUIRE(mem.write(GuestAddress{high_start.value}, std::uint8_t{1}));
    GuestMemory moved = std::move(mem);
    CHECK(moved.tracks_dirty_pages());
    CHECK(moved.take_dirty_pages(1) == std::vector<std::uint64_t>{1});
}

}  // namespace kvmlet
