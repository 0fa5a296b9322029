#include "devices/virtio/chain_io.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/unit/support/fake_driver.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"

namespace kvmlet::test {
namespace {

constexpr std::uint64_t ram_size = 4 * MiB;

// A request header shaped like virtio-blk's (§5.2.6), to split across descriptors.
struct Header {
    std::uint32_t type;
    std::uint32_t reserved;
    std::uint64_t sector;
};
static_assert(sizeof(Header) == 16);

std::vector<std::byte> counting(std::size_t n, std::uint8_t first = 0) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = std::byte{static_cast<std::uint8_t>(first + i)};
    return v;
}

// Chains made by a FakeDriver and popped from a real queue, so the buffers are exactly what the
// queue hands a device.
struct Rig {
    GuestMemory memory = flat_ram(ram_size);
    FakeDriver driver{memory, 16};
    virtio::SplitQueue queue =
        virtio::SplitQueue::activate(memory, driver.config(), 256, false, true).value();

    virtio::DescriptorChain chain(std::vector<Buffer> const& buffers) {
        driver.add_chain(buffers);
        auto c = queue.pop();
        REQUIRE(c);
        REQUIRE(c->descriptors.size() == buffers.size());
        return std::move(*c);
    }
    // A chain as a device could never get it from the queue (which checks buffers against RAM
    // when it pops them): for the readers' and writers' own checks.
    static virtio::DescriptorChain unchecked_chain(std::vector<Buffer> const& buffers) {
        virtio::DescriptorChain chain;
        for (auto const& b : buffers) chain.descriptors.push_back({GuestAddress{b.addr}, b.len, b.writable});
        return chain;
    }
};

}  // namespace

TEST_CASE("ChainReader reads a header split across two descriptors, then the data after it") {
    Rig rig;
    Header const sent{.type = 1, .reserved = 0xdeadbeef, .sector = 0x0123'4567'89ab'cdef};
    std::array<std::byte, sizeof(Header)> raw{};
    std::memcpy(raw.data(), &sent, sizeof sent);
    auto a = rig.driver.alloc_with(std::span(raw).first(5));
    auto b = rig.driver.alloc_with(std::span(raw).subspan(5));
    auto data = counting(40, 0x30);
    auto c = rig.driver.alloc_with(data);
    auto status = rig.driver.alloc(1);
    auto chain = rig.chain({{a, 5, false}, {b, 11, false}, {c, 40, false}, {status, 1, true}});

    virtio::ChainReader reader(rig.memory, chain);
    CHECK(reader.remaining() == 56);
    Header got{};
    REQUIRE(reader.read_obj(got));
    CHECK(got.type == sent.type);
    CHECK(got.reserved == sent.reserved);
    CHECK(got.sector == sent.sector);
    CHECK(reader.remaining() == 40);

    std::vector<std::byte> rest(40);
    REQUIRE(reader.read(rest));
    CHECK(rest == data);
    CHECK(reader.remaining() == 0);
}

TEST_CASE("ChainReader reads in pieces that do not line up with the descriptors") {
    Rig rig;
    auto bytes = counting(30);
    auto a = rig.driver.alloc_with(std::span(bytes).first(7));
    auto b = rig.driver.alloc_with(std::span(bytes).subspan(7, 13));
    auto c = rig.driver.alloc_with(std::span(bytes).subspan(20));
    auto chain = rig.chain({{a, 7, false}, {b, 13, false}, {c, 10, false}});
    virtio::ChainReader reader(rig.memory, chain);
    std::vector<std::byte> got;
    for (std::size_t piece : {3u, 9u, 1u, 12u, 5u}) {
        std::vector<std::byte> part(piece);
        REQUIRE(reader.read(part));
        got.insert(got.end(), part.begin(), part.end());
    }
    CHECK(got == bytes);
    CHECK(reader.remaining() == 0);
}

TEST_CASE("ChainReader skips zero-length descriptors") {
    Rig rig;
    auto bytes = counting(8, 1);
    auto a = rig.driver.alloc_with(std::span(bytes).first(4));
    auto z = rig.driver.alloc(16);
    auto b = rig.driver.alloc_with(std::span(bytes).subspan(4));
    auto chain =
        rig.chain({{z, 0, false}, {a, 4, false}, {z, 0, false}, {z, 0, false}, {b, 4, false}, {z, 0, false}});
    virtio::ChainReader reader(rig.memory, chain);
    CHECK(reader.remaining() == 8);
    std::vector<std::byte> got(8);
    REQUIRE(reader.read(got));
    CHECK(got == bytes);
    CHECK(reader.remaining() == 0);
}

TEST_CASE("ChainReader reads exactly to the end and then refuses even one more byte") {
    Rig rig;
    auto bytes = counting(12);
    auto a = rig.driver.alloc_with(std::span(bytes).first(6));
    auto b = rig.driver.alloc_with(std::span(bytes).subspan(6));
    auto chain = rig.chain({{a, 6, false}, {b, 6, false}});
    virtio::ChainReader reader(rig.memory, chain);
    std::vector<std::byte> got(12);
    REQUIRE(reader.read(got));
    CHECK(got == bytes);
    std::array<std::byte, 1> one{};
    CHECK_FALSE(reader.read(one));
    CHECK(reader.read(std::span<std::byte>{}));  // nothing asked, nothing missing
    std::uint8_t obj = 0;
    CHECK_FALSE(reader.read_obj(obj));
}

TEST_CASE("ChainReader refuses a read longer than what remains") {
    Rig rig;
    auto a = rig.driver.alloc_with(counting(10));
    auto chain = rig.chain({{a, 4, false}, {a + 4, 6, false}});
    virtio::ChainReader reader(rig.memory, chain);
    std::vector<std::byte> eleven(11);
    CHECK_FALSE(reader.read(eleven));
    Header too_big{};
    CHECK_FALSE(reader.read_obj(too_big));
}

TEST_CASE("ChainReader sees only the readable buffers and ChainWriter only the writable ones") {
    Rig rig;
    auto r1 = rig.driver.alloc_with(counting(3, 0x10)), r2 = rig.driver.alloc_with(counting(5, 0x20));
    auto w1 = rig.driver.alloc(7), w2 = rig.driver.alloc(9);
    auto chain = rig.chain({{r1, 3, false}, {r2, 5, false}, {w1, 7, true}, {w2, 9, true}});

    virtio::ChainReader reader(rig.memory, chain);
    CHECK(reader.remaining() == 8);
    virtio::ChainWriter writer(rig.memory, chain);
    CHECK(writer.remaining() == 16);
    CHECK(writer.written() == 0);

    std::vector<std::byte> got(8);
    REQUIRE(reader.read(got));
    std::vector<std::byte> expected = counting(3, 0x10);
    auto tail = counting(5, 0x20);
    expected.insert(expected.end(), tail.begin(), tail.end());
    CHECK(got == expected);

    // The writer starts at the first writable buffer, not at the readable ones.
    auto out = counting(16, 0x80);
    REQUIRE(writer.write(out));
    CHECK(guest_bytes(rig.memory, r1, 3) == counting(3, 0x10));
    CHECK(guest_bytes(rig.memory, w1, 7) == std::vector<std::byte>(out.begin(), out.begin() + 7));
    CHECK(guest_bytes(rig.memory, w2, 9) == std::vector<std::byte>(out.begin() + 7, out.end()));
}

TEST_CASE(
    "A chain without readable buffers gives an empty reader, one without writable buffers an empty writer") {
    Rig rig;
    auto buf = rig.driver.alloc(16);
    auto writable_only = rig.chain({{buf, 16, true}});
    virtio::ChainReader reader(rig.memory, writable_only);
    CHECK(reader.remaining() == 0);
    std::array<std::byte, 1> one{};
    CHECK_FALSE(reader.read(one));

    auto readable_only = rig.chain({{buf, 16, false}});
    virtio::ChainWriter writer(rig.memory, readable_only);
    CHECK(writer.remaining() == 0);
    CHECK_FALSE(writer.write(one));
    CHECK(writer.written() == 0);
}

TEST_CASE("ChainWriter spreads bytes over the writable buffers in order and counts them") {
    Rig rig;
    auto a = rig.driver.alloc(5), b = rig.driver.alloc(3), c = rig.driver.alloc(8);
    auto chain = rig.chain({{a, 5, true}, {b, 3, true}, {c, 8, true}});
    virtio::ChainWriter writer(rig.memory, chain);
    CHECK(writer.remaining() == 16);

    auto first = counting(4, 0x40);
    REQUIRE(writer.write(first));
    CHECK(writer.written() == 4);
    Header const h{.type = 0x11223344, .reserved = 0x55667788, .sector = 0};
    REQUIRE(writer.write_obj(std::uint32_t{0xa1a2a3a4}));
    CHECK(writer.written() == 8);
    CHECK(writer.remaining() == 8);
    REQUIRE(writer.write_obj(std::uint64_t{0x0102030405060708}));
    CHECK(writer.written() == 16);
    CHECK(writer.remaining() == 0);
    CHECK_FALSE(writer.write_obj(h.type));
    CHECK(writer.written() == 16);

    CHECK(guest_bytes(rig.memory, a, 4) == first);
    // The u32 straddles a and b: one byte in a, three in b.
    CHECK(guest<std::uint8_t>(rig.memory, a + 4) == 0xa4);
    CHECK(guest_bytes(rig.memory, b, 3) ==
          std::vector<std::byte>{std::byte{0xa3}, std::byte{0xa2}, std::byte{0xa1}});
    CHECK(guest<std::uint64_t>(rig.memory, c) == 0x0102030405060708);
}

TEST_CASE("ChainWriter skips zero-length writable descriptors") {
    Rig rig;
    auto a = rig.driver.alloc(2), z = rig.driver.alloc(16), b = rig.driver.alloc(2);
    auto chain = rig.chain({{z, 0, true}, {a, 2, true}, {z, 0, true}, {b, 2, true}, {z, 0, true}});
    virtio::ChainWriter writer(rig.memory, chain);
    CHECK(writer.remaining() == 4);
    auto bytes = counting(4, 0x61);
    REQUIRE(writer.write(bytes));
    CHECK(writer.written() == 4);
    CHECK(guest_bytes(rig.memory, a, 2) == std::vector<std::byte>(bytes.begin(), bytes.begin() + 2));
    CHECK(guest_bytes(rig.memory, b, 2) == std::vector<std::byte>(bytes.begin() + 2, bytes.end()));
    CHECK(guest_bytes(rig.memory, z, 16) == std::vector<std::byte>(16));
}

TEST_CASE("ChainWriter refuses a write longer than the writable space") {
    Rig rig;
    auto a = rig.driver.alloc(4), b = rig.driver.alloc(4);
    auto chain = rig.chain({{a, 4, true}, {b, 4, true}});
    virtio::ChainWriter writer(rig.memory, chain);
    std::vector<std::byte> nine(9, std::byte{0xff});
    CHECK_FALSE(writer.write(nine));
    CHECK(writer.written() <= 8);
    std::vector<std::byte> eight(8, std::byte{0x11});
    virtio::ChainWriter fresh(rig.memory, chain);
    REQUIRE(fresh.write(eight));
    CHECK(fresh.written() == 8);
}

TEST_CASE("ChainReader and ChainWriter fail on a buffer outside RAM or straddling its end") {
    Rig rig;
    constexpr std::uint64_t far = std::uint64_t{1} << 40;
    std::array<std::byte, 8> eight{};

    SECTION("readable buffer outside RAM") {
        auto chain = Rig::unchecked_chain({{far, 8, false}});
        virtio::ChainReader reader(rig.memory, chain);
        CHECK_FALSE(reader.read(eight));
    }
    SECTION("readable buffer straddling the end of RAM") {
        auto chain = Rig::unchecked_chain({{ram_size - 4, 8, false}});
        virtio::ChainReader reader(rig.memory, chain);
        CHECK_FALSE(reader.read(eight));
    }
    SECTION("the second readable buffer is the bad one") {
        auto ok = rig.driver.alloc(4);
        auto chain = Rig::unchecked_chain({{ok, 4, false}, {far, 4, false}});
        virtio::ChainReader reader(rig.memory, chain);
        CHECK_FALSE(reader.read(eight));
    }
    SECTION("writable buffer outside RAM") {
        auto chain = Rig::unchecked_chain({{far, 8, true}});
        virtio::ChainWriter writer(rig.memory, chain);
        CHECK_FALSE(writer.write(eight));
    }
    SECTION("writable buffer straddling the end of RAM") {
        auto chain = Rig::unchecked_chain({{ram_size - 4, 8, true}});
        virtio::ChainWriter writer(rig.memory, chain);
        CHECK_FALSE(writer.write(eight));
        CHECK(guest_bytes(rig.memory, ram_size - 4, 4) == std::vector<std::byte>(4));  // nothing half-written
    }
    SECTION("a buffer that ends exactly at the end of RAM is fine") {
        auto chain = rig.chain({{ram_size - 8, 8, false}, {ram_size - 8, 8, true}});
        virtio::ChainReader reader(rig.memory, chain);
        CHECK(reader.read(eight));
        virtio::ChainWriter writer(rig.memory, chain);
        CHECK(writer.write(eight));
        CHECK(writer.written() == 8);
    }
}

TEST_CASE("view_buffers views one direction's buffers from an offset, up to a length, across descriptors") {
    Rig rig;
    auto a = rig.driver.alloc(16), b = rig.driver.alloc(32), w = rig.driver.alloc(64);
    auto chain = rig.chain({{a, 16, false}, {b, 32, false}, {w, 64, true}});
    std::vector<iovec> out;
    out.reserve(8);
    CHECK(virtio::view_buffers(rig.memory, chain, virtio::Direction::readable, 20, 8, out) == 8u);
    REQUIRE(out.size() == 1);
    CHECK(out[0].iov_len == 8);
    CHECK(out[0].iov_base == rig.memory.slice(GuestAddress{b + 4}, 8)->data());
    out.clear();
    CHECK(virtio::view_buffers(rig.memory, chain, virtio::Direction::readable, 8, virtio::all_bytes, out) ==
          40u);
    CHECK(out.size() == 2);
    out.clear();
    CHECK(virtio::view_buffers(rig.memory, chain, virtio::Direction::writable, 0, virtio::all_bytes, out) ==
          64u);
    out.clear();
    CHECK_FALSE(
        virtio::view_buffers(rig.memory, chain, virtio::Direction::readable, 49, 1, out));  // skip too far
}

TEST_CASE("view_buffers refuses a piece outside RAM and never grows its output") {
    Rig rig;
    auto a = rig.driver.alloc(16);
    auto chain = Rig::unchecked_chain({{a, 16, false}, {8 * MiB, 16, false}});
    std::vector<iovec> out;
    out.reserve(4);
    CHECK_FALSE(
        virtio::view_buffers(rig.memory, chain, virtio::Direction::readable, 0, virtio::all_bytes, out));
    out.clear();
    CHECK(virtio::view_buffers(rig.memory, chain, virtio::Direction::readable, 0, 16, out) ==
          16u);  // not reached
    std::vector<iovec> tiny;
    tiny.reserve(1);
    auto two = rig.chain({{rig.driver.alloc(4), 4, false}, {rig.driver.alloc(4), 4, false}});
    std::size_t const capacity = tiny.capacity();
    CHECK_FALSE(
        virtio::view_buffers(rig.memory, two, virtio::Direction::readable, 0, virtio::all_bytes, tiny));
    CHECK(tiny.capacity() == capacity);
}

}  // namespace kvmlet::test
