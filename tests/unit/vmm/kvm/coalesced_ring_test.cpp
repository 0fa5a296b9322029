#include "vmm/kvm/coalesced_ring.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>
#include <optional>
#include <vector>

namespace kvmlet {
namespace {

constexpr std::uint64_t port = 0x3f8;

// A ring page as KVM (C) lays it out: first and last, then 24-byte entries from byte 8. Filled by
// the test in KVM's place.
struct FakeRing {
    struct Layout {
        std::uint32_t first;
        std::uint32_t last;
        kvm_coalesced_mmio entries[170];
    };
    static_assert(offsetof(Layout, entries) == 8 && sizeof(Layout) <= 4096);
    alignas(8) std::array<std::byte, 4096> page{};

    Layout& ring() { return *reinterpret_cast<Layout*>(page.data()); }
    void append(std::uint32_t capacity, std::uint64_t address, std::vector<std::uint8_t> const& data,
                bool pio = true, std::optional<std::uint32_t> len = std::nullopt) {
        kvm_coalesced_mmio& e = ring().entries[ring().last];
        e = {};
        e.phys_addr = address;
        e.len = len.value_or(static_cast<std::uint32_t>(data.size()));
        e.pio = pio ? 1 : 0;
        std::memcpy(e.data, data.data(), std::min<std::size_t>(data.size(), sizeof e.data));
        ring().last = (ring().last + 1) % capacity;
    }
};

struct Replayed {
    std::uint64_t address;
    std::vector<std::uint8_t> data;
    bool operator==(Replayed const&) const = default;
};

std::vector<Replayed> drain(CoalescedRing& ring) {
    std::vector<Replayed> out;
    ring.drain([&](CoalescedWrite const& w) {
        CHECK(w.pio);
        std::vector<std::uint8_t> bytes;
        for (auto b : w.data) bytes.push_back(std::to_integer<std::uint8_t>(b));
        out.push_back({w.address, bytes});
    });
    return out;
}

}  // namespace

TEST_CASE("A coalesced ring replays its writes in order and frees their slots") {
    FakeRing fake;
    CoalescedRing ring(fake.page, port, 1, true);
    CHECK(ring.capacity() == (4096 - 8) / 24);
    CHECK(drain(ring).empty());
    fake.append(ring.capacity(), port, {'a'});
    fake.append(ring.capacity(), port, {'b'});
    CHECK(drain(ring) == std::vector<Replayed>{{port, {'a'}}, {port, {'b'}}});
    CHECK(fake.ring().first == 2);
    CHECK(drain(ring).empty());
}

TEST_CASE("A coalesced ring wraps around its last slot") {
    FakeRing fake;
    CoalescedRing ring(fake.page, port, 1, true);
    std::uint32_t const n = ring.capacity();
    fake.ring().first = fake.ring().last = n - 2;
    for (std::uint8_t c : {'x', 'y', 'z', 'w'}) fake.append(n, port, {c});
    CHECK(fake.ring().last == 2);
    auto out = drain(ring);
    REQUIRE(out.size() == 4);
    CHECK(out[0].data == std::vector<std::uint8_t>{'x'});
    CHECK(out[3].data == std::vector<std::uint8_t>{'w'});
    CHECK(fake.ring().first == 2);
}

TEST_CASE("A coalesced ring drops entries of a bad length, kind or address and goes on") {
    FakeRing fake;
    CoalescedRing ring(fake.page, port, 1, true);
    std::uint32_t const n = ring.capacity();
    fake.append(n, port, {'a'}, true, 0);          // no bytes
    fake.append(n, port, {'b'}, true, 9);          // more than the 8 an entry holds
    fake.append(n, port, {'c'}, false);            // MMIO in a port zone
    fake.append(n, port + 1, {'d'});               // past the zone
    fake.append(n, port - 1, {'e', 'f'});          // starts before it
    fake.append(n, port, {'g', 'h'});              // runs past its end
    fake.append(n, 0xffff'ffff'ffff'ffff, {'i'});  // an address that would wrap
    fake.append(n, port, {'j'});
    CHECK(drain(ring) == std::vector<Replayed>{{port, {'j'}}});
    CHECK(fake.ring().first == fake.ring().last);
}

TEST_CASE("A coalesced ring with an index out of range is emptied, not read") {
    FakeRing fake;
    CoalescedRing ring(fake.page, port, 1, true);
    fake.ring().first = 0;
    fake.ring().last = ring.capacity();  // one past the end
    CHECK(drain(ring).empty());
    CHECK(fake.ring().first == 0);
    fake.ring().first = 4000;
    fake.ring().last = 3;
    CHECK(drain(ring).empty());
    CHECK(fake.ring().first == 3);
}

}  // namespace kvmlet
