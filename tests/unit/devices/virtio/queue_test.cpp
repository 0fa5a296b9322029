#include "devices/virtio/queue.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/virtio_spec.hpp"
#include "tests/unit/support/fake_driver.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"

namespace kvmlet::test {
namespace {

constexpr std::uint64_t ram_size = 4 * MiB;
constexpr std::uint16_t default_size = 8;
// Descriptor slots at and above this index are for hand-written (bad) chains; FakeDriver's
// add_chain takes slots from 0 upwards.
constexpr std::uint16_t manual_slot = 4;

virtio::SplitQueue activate(GuestMemory const& memory, virtio::QueueConfig const& config, bool event_idx,
                            bool indirect, std::uint16_t max_size = 256) {
    auto queue = virtio::SplitQueue::activate(memory, config, max_size, event_idx, indirect);
    if (!queue) FAIL("activate: " << queue.error());
    return std::move(queue).value();
}

bool activates(GuestMemory const& memory, virtio::QueueConfig const& config, std::uint16_t max_size = 256) {
    auto queue = virtio::SplitQueue::activate(memory, config, max_size, false, false);
    if (!queue) UNSCOPED_INFO("rejected: " << queue.error());
    return queue.has_value();
}

struct Options {
    std::uint16_t size = default_size;
    bool event_idx = false;
    bool indirect = true;
};

// A queue activated on rings a FakeDriver owns, in 4 MiB of real guest RAM.
struct Rig {
    explicit Rig(Options o = {})
        : driver(memory, o.size), queue(activate(memory, driver.config(), o.event_idx, o.indirect)) {}

    GuestMemory memory = flat_ram(ram_size);
    FakeDriver driver;
    virtio::SplitQueue queue;

    // A well-formed chain: one readable and one writable buffer in RAM.
    std::uint16_t add_good_chain() {
        auto out = driver.alloc(16), in = driver.alloc(16);
        return driver.add_chain({{out, 16, false}, {in, 16, true}});
    }

    // Publishes the malformed chain at `head`, then a good one, and checks what the guest must
    // see: the bad chain used with length 0, counted, the queue still working, the good chain
    // served by the same pop().
    void expect_rejected(std::uint16_t head) {
        driver.publish(head);
        auto good = add_good_chain();
        auto chain = queue.pop();
        REQUIRE(chain);
        CHECK(chain->head == good);
        CHECK(queue.bad_chains() == 1);
        CHECK_FALSE(queue.broken());
        auto used = driver.next_used();
        REQUIRE(used);
        CHECK(used->id == head);
        CHECK(used->len == 0);
        CHECK_FALSE(driver.next_used());
    }

    // Writes `entries` as an indirect table in RAM and returns its address.
    std::uint64_t indirect_table(std::vector<RawDescriptor> const& entries) {
        auto table = driver.alloc(16 * entries.size());
        for (std::size_t i = 0; i < entries.size(); ++i)
            REQUIRE(memory.write(GuestAddress{table + 16 * i}, entries[i]));
        return table;
    }
};

}  // namespace

// ---- activation -------------------------------------------------------------------------------

TEST_CASE("A split queue activates when its size is a power of two up to the maximum") {
    GuestMemory memory = flat_ram(ram_size);
    for (std::uint16_t size : std::initializer_list<std::uint16_t>{1, 2, 4, 128, 256}) {
        CAPTURE(size);
        CHECK(activates(memory, FakeDriver(memory, size).config(), 256));
    }
    CHECK(activates(memory, FakeDriver(memory, virtio::max_queue_size).config(), virtio::max_queue_size));
}

TEST_CASE("A split queue of size zero, not a power of two, or above the maximum does not activate") {
    GuestMemory memory = flat_ram(ram_size);
    for (std::uint16_t size : std::initializer_list<std::uint16_t>{0, 3, 6, 100, 255, 257, 512}) {
        CAPTURE(size);
        CHECK_FALSE(activates(memory, FakeDriver(memory, size).config(), 256));
    }
    CHECK_FALSE(activates(memory, FakeDriver(memory, 16).config(), 8));
    CHECK_FALSE(activates(memory, FakeDriver(memory, 8).config(), 7));  // QueueNumMax need not be 2^n
    CHECK(activates(memory, FakeDriver(memory, 4).config(), 7));
}

TEST_CASE(
    "A split queue whose descriptor table, driver area or device area is misaligned does not activate") {
    GuestMemory memory = flat_ram(ram_size);
    auto const good = FakeDriver(memory, default_size).config();
    REQUIRE(activates(memory, good));

    auto shifted = [&](GuestAddress virtio::QueueConfig::*area, std::uint64_t by) {
        auto config = good;
        (config.*area).value += by;
        CAPTURE(by);
        return activates(memory, config);
    };
    // §2.7: descriptor table 16-byte, driver area 2-byte, device area 4-byte aligned.
    for (std::uint64_t by : {1, 2, 4, 8}) CHECK_FALSE(shifted(&virtio::QueueConfig::desc, by));
    CHECK(shifted(&virtio::QueueConfig::desc, 16));
    CHECK_FALSE(shifted(&virtio::QueueConfig::avail, 1));
    CHECK(shifted(&virtio::QueueConfig::avail, 2));
    for (std::uint64_t by : {1, 2, 3}) CHECK_FALSE(shifted(&virtio::QueueConfig::used, by));
    CHECK(shifted(&virtio::QueueConfig::used, 4));
}

TEST_CASE("A split queue whose areas reach past the end of RAM or wrap the address space does not activate") {
    GuestMemory memory = flat_ram(ram_size);
    auto const good = FakeDriver(memory, default_size).config();
    auto with = [&](GuestAddress virtio::QueueConfig::*area, std::uint64_t at) {
        auto config = good;
        config.*area = GuestAddress{at};
        CAPTURE(at);
        return activates(memory, config);
    };
    constexpr std::uint64_t desc_bytes = 16 * default_size;      // 128
    constexpr std::uint64_t avail_bytes = 6 + 2 * default_size;  // 22, with used_event
    constexpr std::uint64_t used_bytes = 6 + 8 * default_size;   // 70, with avail_event

    CHECK(with(&virtio::QueueConfig::desc, ram_size - desc_bytes));
    CHECK_FALSE(with(&virtio::QueueConfig::desc, ram_size - desc_bytes + 16));
    CHECK_FALSE(with(&virtio::QueueConfig::desc, ram_size));
    CHECK_FALSE(with(&virtio::QueueConfig::desc, 0xffff'ffff'ffff'ff80));

    CHECK(with(&virtio::QueueConfig::avail, ram_size - avail_bytes));
    CHECK_FALSE(with(&virtio::QueueConfig::avail, ram_size - avail_bytes + 2));  // loses used_event
    CHECK_FALSE(with(&virtio::QueueConfig::avail, 0xffff'ffff'ffff'fffe));

    CHECK(with(&virtio::QueueConfig::used, ram_size - 72));                    // 70 bytes, 4-aligned
    CHECK_FALSE(with(&virtio::QueueConfig::used, ram_size - used_bytes + 2));  // loses avail_event
    CHECK_FALSE(with(&virtio::QueueConfig::used, 0xffff'ffff'ffff'fffc));
    CHECK_FALSE(with(&virtio::QueueConfig::used, std::uint64_t{1} << 40));
}

TEST_CASE("A split queue the driver has not made ready does not activate") {
    GuestMemory memory = flat_ram(ram_size);
    auto config = FakeDriver(memory, default_size).config();
    config.ready = false;
    CHECK_FALSE(activates(memory, config));
}

// ---- good chains ------------------------------------------------------------------------------

TEST_CASE("A direct chain comes back with its buffers in order, their lengths and writable flags") {
    Rig rig;
    auto a = rig.driver.alloc(10), b = rig.driver.alloc(20), c = rig.driver.alloc(30);
    auto head = rig.driver.add_chain({{a, 10, false}, {b, 20, false}, {c, 30, true}});
    auto chain = rig.queue.pop();
    REQUIRE(chain);
    CHECK(chain->head == head);
    REQUIRE(chain->descriptors.size() == 3);
    CHECK(chain->descriptors[0].addr.value == a);
    CHECK(chain->descriptors[0].len == 10);
    CHECK_FALSE(chain->descriptors[0].device_writable);
    CHECK(chain->descriptors[1].addr.value == b);
    CHECK(chain->descriptors[1].len == 20);
    CHECK_FALSE(chain->descriptors[1].device_writable);
    CHECK(chain->descriptors[2].addr.value == c);
    CHECK(chain->descriptors[2].len == 30);
    CHECK(chain->descriptors[2].device_writable);
    CHECK_FALSE(rig.queue.pop());
    CHECK(rig.queue.bad_chains() == 0);
}

TEST_CASE("A direct chain whose descriptors are scattered over the table is followed through next") {
    Rig rig;
    auto a = rig.driver.alloc(8), b = rig.driver.alloc(8), c = rig.driver.alloc(8);
    rig.driver.write_descriptor(6, {a, 8, desc_f_next, 2});
    rig.driver.write_descriptor(2, {b, 8, desc_f_next, 7});
    rig.driver.write_descriptor(7, {c, 8, desc_f_write, 6});  // no NEXT: `next` is not followed
    rig.driver.publish(6);
    auto chain = rig.queue.pop();
    REQUIRE(chain);
    CHECK(chain->head == 6);
    REQUIRE(chain->descriptors.size() == 3);
    CHECK(chain->descriptors[0].addr.value == a);
    CHECK(chain->descriptors[1].addr.value == b);
    CHECK(chain->descriptors[2].addr.value == c);
}

TEST_CASE("An indirect chain comes back resolved into the buffers of its table") {
    Rig rig;
    auto a = rig.driver.alloc(16), b = rig.driver.alloc(512), c = rig.driver.alloc(1);
    auto head = rig.driver.add_indirect_chain({{a, 16, false}, {b, 512, true}, {c, 1, true}});
    auto chain = rig.queue.pop();
    REQUIRE(chain);
    CHECK(chain->head == head);
    REQUIRE(chain->descriptors.size() == 3);
    CHECK(chain->descriptors[0].addr.value == a);
    CHECK(chain->descriptors[0].len == 16);
    CHECK_FALSE(chain->descriptors[0].device_writable);
    CHECK(chain->descriptors[1].addr.value == b);
    CHECK(chain->descriptors[1].len == 512);
    CHECK(chain->descriptors[1].device_writable);
    CHECK(chain->descriptors[2].addr.value == c);
    CHECK(chain->descriptors[2].device_writable);
    CHECK(rig.queue.bad_chains() == 0);
}

TEST_CASE("The write flag of a descriptor that points at an indirect table is ignored") {
    Rig rig;
    auto a = rig.driver.alloc(16);
    auto table = rig.indirect_table({{a, 16, 0, 0}});
    rig.driver.write_descriptor(manual_slot, {table, 16, desc_f_indirect | desc_f_write, 0});
    rig.driver.publish(manual_slot);
    auto chain = rig.queue.pop();
    REQUIRE(chain);
    REQUIRE(chain->descriptors.size() == 1);
    CHECK_FALSE(chain->descriptors[0].device_writable);  // §2.7.5.3.2
}

TEST_CASE("Chains are served in the order the driver made them available") {
    Rig rig;
    std::vector<std::uint16_t> heads;
    for (int i = 0; i < 3; ++i) heads.push_back(rig.driver.add_chain({{rig.driver.alloc(4), 4, true}}));
    heads.push_back(rig.driver.add_indirect_chain({{rig.driver.alloc(4), 4, true}}));
    for (auto head : heads) {
        auto chain = rig.queue.pop();
        REQUIRE(chain);
        CHECK(chain->head == head);
    }
    CHECK_FALSE(rig.queue.pop());
}

TEST_CASE("pop on an empty ring returns nothing and touches neither the used ring nor avail_event") {
    Rig rig;
    REQUIRE(rig.memory.write(GuestAddress{rig.driver.used_ring() + 4 + 8ull * default_size},
                             std::uint16_t{0xabcd}));
    CHECK_FALSE(rig.queue.pop());
    CHECK_FALSE(rig.queue.pop());
    CHECK(rig.driver.used_idx() == 0);
    CHECK(rig.driver.avail_event() == 0xabcd);  // no EVENT_IDX: avail_event is not the device's
    CHECK(rig.queue.bad_chains() == 0);
    CHECK_FALSE(rig.queue.broken());
}

TEST_CASE("A chain that uses every descriptor of the queue is accepted") {
    Rig rig({.size = 4});
    std::vector<Buffer> buffers;
    for (int i = 0; i < 4; ++i) buffers.push_back({rig.driver.alloc(8), 8, i >= 2});
    rig.driver.add_chain(buffers);
    auto chain = rig.queue.pop();
    REQUIRE(chain);
    CHECK(chain->descriptors.size() == 4);
}

TEST_CASE("An indirect table with as many entries as the queue size is accepted") {
    Rig rig({.size = 4});
    std::vector<Buffer> buffers;
    for (int i = 0; i < 4; ++i) buffers.push_back({rig.driver.alloc(8), 8, false});
    rig.driver.add_indirect_chain(buffers);
    auto chain = rig.queue.pop();
    REQUIRE(chain);
    CHECK(chain->descriptors.size() == 4);
}

// ---- malformed chains: each fails only itself ----------------------------------------------------

TEST_CASE(
    "A descriptor whose next is itself is returned used with length zero and the next chain is served") {
    Rig rig;
    rig.driver.write_descriptor(manual_slot, {rig.driver.alloc(8), 8, desc_f_next, manual_slot});
    rig.expect_rejected(manual_slot);
}

TEST_CASE("A longer descriptor cycle is returned used with length zero and the next chain is served") {
    Rig rig;
    auto buf = rig.driver.alloc(8);
    rig.driver.write_descriptor(4, {buf, 8, desc_f_next, 5});
    rig.driver.write_descriptor(5, {buf, 8, desc_f_next, 6});
    rig.driver.write_descriptor(6, {buf, 8, desc_f_next, 4});
    rig.expect_rejected(4);
}

TEST_CASE("A cycle that enters the loop after the head is rejected") {
    Rig rig;
    auto buf = rig.driver.alloc(8);
    rig.driver.write_descriptor(4, {buf, 8, desc_f_next, 5});
    rig.driver.write_descriptor(5, {buf, 8, desc_f_next | desc_f_write, 6});
    rig.driver.write_descriptor(6, {buf, 8, desc_f_next | desc_f_write, 5});
    rig.expect_rejected(4);
}

TEST_CASE("A loop inside an indirect table is rejected") {
    Rig rig({.size = 4});
    auto buf = rig.driver.alloc(8);
    auto table = rig.indirect_table({{buf, 8, desc_f_next, 1}, {buf, 8, desc_f_next, 0}});
    rig.driver.write_descriptor(3, {table, 32, desc_f_indirect, 0});
    rig.expect_rejected(3);
}

TEST_CASE("An indirect table with more entries than the queue size is rejected") {
    SECTION("a chain through all of them") {
        Rig rig({.size = 4});
        std::vector<RawDescriptor> entries;
        auto buf = rig.driver.alloc(8);
        for (std::uint16_t i = 0; i < 5; ++i)
            entries.push_back({buf, 8, static_cast<std::uint16_t>(i < 4 ? desc_f_next : 0),
                               static_cast<std::uint16_t>(i + 1)});
        auto table = rig.indirect_table(entries);
        rig.driver.write_descriptor(3, {table, 16 * 5, desc_f_indirect, 0});
        rig.expect_rejected(3);
    }
    SECTION("a short chain in an oversized table") {
        Rig rig({.size = 4});
        auto buf = rig.driver.alloc(8);
        auto table = rig.indirect_table({{buf, 8, 0, 0}, {}, {}, {}, {}});
        rig.driver.write_descriptor(3, {table, 16 * 5, desc_f_indirect, 0});
        rig.expect_rejected(3);
    }
}

TEST_CASE("A chain in an indirect table that is longer than the queue is rejected even if the table is not") {
    // The table holds 4 entries (= size) but entry 3 points back to entry 2: the walk must stop
    // at `size` buffers rather than trust the table's length.
    Rig rig({.size = 4});
    auto buf = rig.driver.alloc(8);
    auto table = rig.indirect_table({{buf, 8, desc_f_next, 1},
                                     {buf, 8, desc_f_next, 2},
                                     {buf, 8, desc_f_next, 3},
                                     {buf, 8, desc_f_next, 2}});
    rig.driver.write_descriptor(3, {table, 64, desc_f_indirect, 0});
    rig.expect_rejected(3);
}

TEST_CASE("An indirect table inside an indirect table is rejected") {
    Rig rig;
    auto buf = rig.driver.alloc(8);
    auto inner = rig.indirect_table({{buf, 8, 0, 0}});
    auto outer = rig.indirect_table({{inner, 16, desc_f_indirect, 0}});
    rig.driver.write_descriptor(manual_slot, {outer, 16, desc_f_indirect, 0});
    rig.expect_rejected(manual_slot);
}

TEST_CASE("An indirect table after a buffer in the same indirect table is rejected") {
    Rig rig;
    auto buf = rig.driver.alloc(8);
    auto inner = rig.indirect_table({{buf, 8, 0, 0}});
    auto outer = rig.indirect_table({{buf, 8, desc_f_next, 1}, {inner, 16, desc_f_indirect, 0}});
    rig.driver.write_descriptor(manual_slot, {outer, 32, desc_f_indirect, 0});
    rig.expect_rejected(manual_slot);
}

TEST_CASE("An indirect descriptor is rejected when VIRTIO_F_INDIRECT_DESC was not negotiated") {
    Rig rig({.indirect = false});
    auto buf = rig.driver.alloc(8);
    auto table = rig.indirect_table({{buf, 8, 0, 0}});
    rig.driver.write_descriptor(manual_slot, {table, 16, desc_f_indirect, 0});
    rig.expect_rejected(manual_slot);
}

TEST_CASE("An indirect descriptor that also has the NEXT flag is rejected") {
    Rig rig;
    auto buf = rig.driver.alloc(8);
    auto table = rig.indirect_table({{buf, 8, 0, 0}});
    rig.driver.write_descriptor(manual_slot, {table, 16, desc_f_indirect | desc_f_next, manual_slot + 1});
    rig.driver.write_descriptor(manual_slot + 1, {buf, 8, desc_f_write, 0});
    rig.expect_rejected(manual_slot);
}

TEST_CASE("An indirect descriptor after a direct buffer in the same chain is rejected") {
    Rig rig;
    auto buf = rig.driver.alloc(8);
    auto table = rig.indirect_table({{buf, 8, 0, 0}});
    rig.driver.write_descriptor(manual_slot, {buf, 8, desc_f_next, manual_slot + 1});
    rig.driver.write_descriptor(manual_slot + 1, {table, 16, desc_f_indirect, 0});
    rig.expect_rejected(manual_slot);
}

TEST_CASE("An indirect table that is empty, not whole descriptors, outside RAM or past its end is rejected") {
    struct Case {
        char const* what;
        std::uint64_t addr;  // 0: a table in RAM
        std::uint32_t len;
    };
    std::array const cases{
        Case{"empty", 0, 0},
        Case{"one and a half descriptors", 0, 24},
        Case{"eight bytes", 0, 8},
        Case{"outside RAM", 1ull << 40, 16},
        Case{"straddling the end of RAM", ram_size - 16, 32},
        Case{"wrapping the address space", 0xffff'ffff'ffff'fff0, 32},
    };
    for (auto const& c : cases) {
        CAPTURE(c.what);
        Rig rig;
        auto buf = rig.driver.alloc(8);
        auto table = c.addr ? c.addr : rig.indirect_table({{buf, 8, 0, 0}, {buf, 8, 0, 0}});
        rig.driver.write_descriptor(manual_slot, {table, c.len, desc_f_indirect, 0});
        rig.expect_rejected(manual_slot);
    }
}

TEST_CASE("A next index beyond the queue or beyond the indirect table is rejected") {
    SECTION("direct") {
        Rig rig;
        rig.driver.write_descriptor(manual_slot, {rig.driver.alloc(8), 8, desc_f_next, default_size});
        rig.expect_rejected(manual_slot);
    }
    SECTION("direct, far out") {
        Rig rig;
        rig.driver.write_descriptor(manual_slot, {rig.driver.alloc(8), 8, desc_f_next, 0xffff});
        rig.expect_rejected(manual_slot);
    }
    SECTION("indirect: next is within the queue size but beyond the table") {
        Rig rig;
        auto buf = rig.driver.alloc(8);
        auto table = rig.indirect_table({{buf, 8, desc_f_next, 1}, {buf, 8, desc_f_next, 2}});
        rig.driver.write_descriptor(manual_slot, {table, 32, desc_f_indirect, 0});
        rig.expect_rejected(manual_slot);
    }
}

TEST_CASE("A buffer whose address plus length wraps the address space is rejected") {
    Rig rig;
    rig.driver.write_descriptor(manual_slot, {0xffff'ffff'ffff'f000, 0x2000, 0, 0});
    rig.expect_rejected(manual_slot);
}

TEST_CASE("A buffer that wraps inside an indirect table is rejected") {
    Rig rig;
    auto table = rig.indirect_table({{0xffff'ffff'ffff'fff0, 0xffff'ffff, 0, 0}});
    rig.driver.write_descriptor(manual_slot, {table, 16, desc_f_indirect, 0});
    rig.expect_rejected(manual_slot);
}

TEST_CASE("A chain whose total length exceeds 4 GiB is rejected") {
    SECTION("three buffers of 2 GiB") {
        Rig rig;
        rig.driver.write_descriptor(4, {0x1'0000'0000, 0x8000'0000, desc_f_next, 5});
        rig.driver.write_descriptor(5, {0x2'0000'0000, 0x8000'0000, desc_f_next | desc_f_write, 6});
        rig.driver.write_descriptor(6, {0x3'0000'0000, 0x8000'0000, desc_f_write, 0});
        rig.expect_rejected(4);
    }
    SECTION("two buffers of 4 GiB - 1") {
        Rig rig;
        rig.driver.write_descriptor(4, {0x1'0000'0000, 0xffff'ffff, desc_f_next, 5});
        rig.driver.write_descriptor(5, {0x2'0000'0000, 0xffff'ffff, 0, 0});
        rig.expect_rejected(4);
    }
    SECTION("2^32 + 1 bytes in an indirect table") {
        Rig rig;
        auto table = rig.indirect_table({{0x1'0000'0000, 0x8000'0000, desc_f_next, 1},
                                         {0x2'0000'0000, 0x8000'0000, desc_f_next, 2},
                                         {0x3'0000'0000, 1, 0, 0}});
        rig.driver.write_descriptor(manual_slot, {table, 48, desc_f_indirect, 0});
        rig.expect_rejected(manual_slot);
    }
}

TEST_CASE("A chain of just under 4 GiB in total is accepted") {
    // 6 GiB of (sparse) RAM, so that both buffers lie in it.
    GuestMemory memory = flat_ram(6ull << 30);
    FakeDriver driver(memory, default_size);
    auto queue = virtio::SplitQueue::activate(memory, driver.config(), 256, false, true).value();
    driver.write_descriptor(4, {0x4000'0000, 0x8000'0000, desc_f_next, 5});
    driver.write_descriptor(5, {0xc000'0000, 0x7fff'ffff, desc_f_write, 0});
    driver.publish(4);
    auto chain = queue.pop();
    REQUIRE(chain);
    CHECK(chain->descriptors.size() == 2);
    CHECK(queue.bad_chains() == 0);
}

TEST_CASE("A readable buffer after a writable one is rejected, directly and inside an indirect table") {
    SECTION("direct") {
        Rig rig;
        auto buf = rig.driver.alloc(8);
        rig.driver.write_descriptor(4, {buf, 8, desc_f_next, 5});
        rig.driver.write_descriptor(5, {buf, 8, desc_f_next | desc_f_write, 6});
        rig.driver.write_descriptor(6, {buf, 8, 0, 0});
        rig.expect_rejected(4);
    }
    SECTION("indirect") {
        Rig rig;
        auto buf = rig.driver.alloc(8);
        auto table = rig.indirect_table({{buf, 8, desc_f_next | desc_f_write, 1}, {buf, 8, 0, 0}});
        rig.driver.write_descriptor(manual_slot, {table, 32, desc_f_indirect, 0});
        rig.expect_rejected(manual_slot);
    }
}

TEST_CASE("Several bad chains in a row each go back used with length zero") {
    Rig rig;
    auto buf = rig.driver.alloc(8);
    rig.driver.write_descriptor(4, {buf, 8, desc_f_next, 4});
    rig.driver.write_descriptor(5, {buf, 8, desc_f_next, 100});
    rig.driver.write_descriptor(6, {0xffff'ffff'ffff'fff0, 0x20, 0, 0});
    rig.driver.publish(4);
    rig.driver.publish(5);
    rig.driver.publish(6);
    CHECK_FALSE(rig.queue.pop());
    CHECK(rig.queue.bad_chains() == 3);
    CHECK_FALSE(rig.queue.broken());
    for (std::uint32_t head : {4u, 5u, 6u}) {
        auto used = rig.driver.next_used();
        REQUIRE(used);
        CHECK(used->id == head);
        CHECK(used->len == 0);
    }
    auto good = rig.add_good_chain();
    auto chain = rig.queue.pop();
    REQUIRE(chain);
    CHECK(chain->head == good);
}

TEST_CASE("A chain with a buffer outside RAM, or straddling its end, never reaches the device") {
    Rig rig;
    constexpr std::uint64_t far = std::uint64_t{1} << 40;
    auto in = rig.driver.alloc(16);
    auto far_head = rig.driver.add_chain({{far, 16, false}, {in, 16, true}});
    auto straddling_head = rig.driver.add_chain({{in, 16, false}, {ram_size - 8, 16, true}});
    auto good = rig.add_good_chain();
    auto chain = rig.queue.pop();
    REQUIRE(chain);
    CHECK(chain->head == good);
    CHECK(rig.queue.bad_chains() == 2);
    auto first = rig.driver.next_used();
    auto second = rig.driver.next_used();
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->id == far_head);
    CHECK(first->len == 0);
    CHECK(second->id == straddling_head);
    CHECK(second->len == 0);
}

// ---- broken queues ----------------------------------------------------------------------------

TEST_CASE("A head index beyond the queue size in the avail ring breaks the queue") {
    Rig rig;
    rig.driver.publish(default_size);
    rig.add_good_chain();
    CHECK_FALSE(rig.queue.pop());
    CHECK(rig.queue.broken());
    CHECK(rig.queue.bad_chains() == 1);
    CHECK(rig.driver.used_idx() == 0);  // no valid id to hand back
    CHECK_FALSE(rig.queue.pop());
}

TEST_CASE("An avail index that jumps more than the queue size ahead breaks the queue for good") {
    Rig rig;
    rig.add_good_chain();
    rig.driver.set_avail_idx(default_size + 1);
    CHECK_FALSE(rig.queue.pop());
    CHECK(rig.queue.broken());
    CHECK(rig.driver.used_idx() == 0);

    rig.driver.set_avail_idx(1);  // the driver repents: too late, the device needs a reset
    CHECK_FALSE(rig.queue.pop());
    CHECK(rig.queue.broken());
}

TEST_CASE("An avail index that jumps backwards breaks the queue") {
    Rig rig;
    rig.add_good_chain();
    REQUIRE(rig.queue.pop());
    rig.driver.set_avail_idx(0);  // 0 - 1 = 65535 entries ahead
    CHECK_FALSE(rig.queue.pop());
    CHECK(rig.queue.broken());
}

TEST_CASE("An avail index exactly the queue size ahead is accepted") {
    Rig rig({.size = 4});
    for (int i = 0; i < 4; ++i) rig.driver.add_chain({{rig.driver.alloc(4), 4, true}});
    for (std::uint16_t i = 0; i < 4; ++i) {
        auto chain = rig.queue.pop();
        REQUIRE(chain);
        CHECK(chain->head == i);
    }
    CHECK_FALSE(rig.queue.pop());
    CHECK_FALSE(rig.queue.broken());
}

TEST_CASE("The avail and used indexes wrap from 65535 to 0 without losing a chain") {
    Rig rig({.size = 4});
    auto buf = rig.driver.alloc(4);
    rig.driver.write_descriptor(1, {buf, 4, desc_f_write, 0});
    constexpr std::uint32_t rounds = 65536 + 10;
    std::uint32_t failures = 0;
    for (std::uint32_t i = 0; i < rounds; ++i) {
        rig.driver.publish(1);
        auto chain = rig.queue.pop();
        if (!chain || chain->head != 1 || rig.queue.pop()) {
            ++failures;
            continue;
        }
        rig.queue.add_used(1, i);
        auto used = rig.driver.next_used();
        if (!used || used->id != 1 || used->len != i) ++failures;
    }
    CHECK(failures == 0);
    CHECK(rig.driver.used_idx() == static_cast<std::uint16_t>(rounds));
    CHECK(rig.driver.avail_idx() == static_cast<std::uint16_t>(rounds));
    CHECK_FALSE(rig.queue.broken());
    CHECK(rig.queue.bad_chains() == 0);
}

// ---- used ring and interrupts -----------------------------------------------------------------

TEST_CASE("add_used writes the id and length into the used ring and publishes the used index") {
    Rig rig({.size = 4});
    for (std::uint32_t i = 0; i < 5; ++i) {
        rig.queue.add_used(static_cast<std::uint16_t>(3 - i % 4), 100 + i);
        CHECK(rig.driver.used_idx() == i + 1);
    }
    // Five elements in a ring of four: the fifth went into slot 0.
    auto const used = rig.driver.used_ring();
    CHECK(guest<std::uint32_t>(rig.memory, used + 4) == 3);
    CHECK(guest<std::uint32_t>(rig.memory, used + 8) == 104);
    CHECK(guest<std::uint32_t>(rig.memory, used + 4 + 8) == 2);
    CHECK(guest<std::uint32_t>(rig.memory, used + 4 + 8 + 4) == 101);
    CHECK(guest<std::uint32_t>(rig.memory, used + 4 + 3 * 8) == 0);
    CHECK(guest<std::uint32_t>(rig.memory, used + 4 + 3 * 8 + 4) == 103);
    CHECK(guest<std::uint16_t>(rig.memory, used) == 0);  // the device sets no used flags
}

TEST_CASE("Without EVENT_IDX an interrupt is needed after used buffers unless the driver set NO_INTERRUPT") {
    Rig rig;
    CHECK_FALSE(rig.queue.needs_interrupt());  // nothing used yet
    rig.queue.add_used(0, 1);
    CHECK(rig.queue.needs_interrupt());
    CHECK_FALSE(rig.queue.needs_interrupt());  // nothing new since

    rig.driver.set_avail_flags(1);  // VIRTQ_AVAIL_F_NO_INTERRUPT
    rig.queue.add_used(1, 1);
    rig.queue.add_used(2, 1);
    CHECK_FALSE(rig.queue.needs_interrupt());

    rig.driver.set_avail_flags(0);
    CHECK_FALSE(rig.queue.needs_interrupt());  // the batch was already accounted for
    rig.queue.add_used(3, 1);
    CHECK(rig.queue.needs_interrupt());

    rig.driver.set_used_event(0);  // meaningless without EVENT_IDX
    rig.queue.add_used(4, 1);
    CHECK(rig.queue.needs_interrupt());
}

TEST_CASE("With EVENT_IDX an interrupt is needed exactly when the used index moves past used_event") {
    Rig rig({.event_idx = true});
    rig.driver.set_used_event(2);
    std::vector<bool> wanted;
    for (std::uint16_t i = 0; i < 5; ++i) {
        rig.queue.add_used(i, 0);
        wanted.push_back(rig.queue.needs_interrupt());
    }
    // Used idx 1, 2, 3, 4, 5: the element at index 2 is published when idx becomes 3.
    CHECK(wanted == std::vector<bool>{false, false, true, false, false});
    CHECK_FALSE(rig.queue.needs_interrupt());
}

TEST_CASE("With EVENT_IDX a batch that crosses used_event needs one interrupt") {
    Rig rig({.event_idx = true});
    rig.driver.set_used_event(3);
    for (std::uint16_t i = 0; i < 5; ++i) rig.queue.add_used(i, 0);  // idx 0 -> 5
    CHECK(rig.queue.needs_interrupt());
    CHECK_FALSE(rig.queue.needs_interrupt());

    rig.driver.set_used_event(4);  // already passed: the driver is behind, no interrupt
    rig.queue.add_used(5, 0);
    CHECK_FALSE(rig.queue.needs_interrupt());

    rig.driver.set_used_event(8);  // idx 6 -> 8 does not publish index 8
    rig.queue.add_used(6, 0);
    rig.queue.add_used(7, 0);
    CHECK_FALSE(rig.queue.needs_interrupt());
    rig.queue.add_used(0, 0);  // idx 8 -> 9
    CHECK(rig.queue.needs_interrupt());
}

TEST_CASE("With EVENT_IDX the NO_INTERRUPT flag is ignored") {
    Rig rig({.event_idx = true});
    rig.driver.set_avail_flags(1);
    rig.driver.set_used_event(0);
    rig.queue.add_used(0, 0);
    CHECK(rig.queue.needs_interrupt());  // §2.7.7.2: the device ignores the flag
}

TEST_CASE("With EVENT_IDX used_event is honoured across the 16-bit wraparound of the used index") {
    Rig rig({.size = 4, .event_idx = true});
    for (std::uint32_t i = 0; i < 65533; ++i) rig.queue.add_used(0, 0);
    (void)rig.queue.needs_interrupt();
    REQUIRE(rig.driver.used_idx() == 65533);

    SECTION("one at a time") {
        rig.driver.set_used_event(65535);
        std::vector<bool> wanted;
        for (int i = 0; i < 4; ++i) {  // idx 65534, 65535, 0, 1
            rig.queue.add_used(0, 0);
            wanted.push_back(rig.queue.needs_interrupt());
        }
        CHECK(wanted == std::vector<bool>{false, false, true, false});
    }
    SECTION("a batch across the wrap, used_event before it") {
        rig.driver.set_used_event(65534);
        for (int i = 0; i < 4; ++i) rig.queue.add_used(0, 0);  // 65533 -> 1
        CHECK(rig.queue.needs_interrupt());
    }
    SECTION("a batch across the wrap, used_event after it") {
        rig.driver.set_used_event(0);
        for (int i = 0; i < 4; ++i) rig.queue.add_used(0, 0);  // 65533 -> 1, publishes index 0
        CHECK(rig.queue.needs_interrupt());
    }
    SECTION("a batch across the wrap, used_event beyond it") {
        rig.driver.set_used_event(1);
        for (int i = 0; i < 4; ++i) rig.queue.add_used(0, 0);  // 65533 -> 1, index 1 not yet
        CHECK_FALSE(rig.queue.needs_interrupt());
    }
    SECTION("a batch across the wrap, used_event far behind it") {
        rig.driver.set_used_event(100);
        for (int i = 0; i < 4; ++i) rig.queue.add_used(0, 0);
        CHECK_FALSE(rig.queue.needs_interrupt());
    }
}

TEST_CASE("With EVENT_IDX pop on an empty ring publishes the next avail index as avail_event") {
    Rig rig({.event_idx = true});
    CHECK_FALSE(rig.queue.pop());
    CHECK(rig.driver.avail_event() == 0);

    for (int i = 0; i < 3; ++i) rig.add_good_chain();
    REQUIRE(rig.memory.write(GuestAddress{rig.driver.used_ring() + 4 + 8ull * default_size},
                             std::uint16_t{0xabcd}));
    for (int i = 0; i < 3; ++i) REQUIRE(rig.queue.pop());
    CHECK(rig.driver.avail_event() == 0xabcd);  // not empty yet: nothing to ask for
    CHECK_FALSE(rig.queue.pop());
    CHECK(rig.driver.avail_event() == 3);
}

}  // namespace kvmlet::test
