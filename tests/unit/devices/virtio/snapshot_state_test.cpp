// A virtio-mmio transport's snapshot section (docs/snapshot.md, virtio.N) with a virtio-rng behind
// it: what a driver set up round-trips into a fresh transport, which goes on from the saved queue
// indices; hostile section contents are refused (Error), never a crash or a ring outside RAM.
#include <array>
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <vector>

#include "devices/legacy/byte_sink.hpp"
#include "devices/virtio/console/console_device.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "devices/virtio/rng/rng_device.hpp"
#include "tests/unit/support/fake_device_host.hpp"
#include "tests/unit/support/fake_driver.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::test {
namespace {

// virtio 1.2 §4.2.2 register offsets and §2.1 status bits, spelled out as the driver sees them.
constexpr std::uint64_t reg_driver_features = 0x020, reg_driver_features_sel = 0x024, reg_queue_sel = 0x030,
                        reg_queue_num = 0x038, reg_queue_ready = 0x044, reg_queue_notify = 0x050,
                        reg_status = 0x070, reg_queue_desc_low = 0x080, reg_queue_driver_low = 0x090,
                        reg_queue_device_low = 0x0a0;
constexpr std::uint32_t acknowledge = 1, driver_bit = 2, driver_ok = 4, features_ok = 8, needs_reset = 64;
constexpr std::uint64_t f_event_idx = std::uint64_t{1} << 29;
constexpr std::uint64_t f_version_1 = std::uint64_t{1} << 32;

// Offsets in the section of a one-queue device (Transport::save_shared, then the MMIO registers).
constexpr std::size_t at_status = 0, at_features = 4, at_queue_count = 12, at_queue_size = 16, at_desc = 18,
                      at_active = 43, at_next_avail = 44, at_next_used = 46, at_interrupt_status = 62,
                      at_device = 70;

constexpr std::uint64_t window = 0xd000'0000;

struct NoIrq final : IrqLine {
    void trigger() noexcept override {}
};

std::shared_ptr<virtio::RngDevice> make_rng(virtio::RateLimiterConfig const& limits = {}) {
    return std::make_shared<virtio::RngDevice>(virtio::RngConfig{.rate_limiter = limits},
                                               [](std::span<std::byte> out) {
                                                   for (auto& b : out) b = std::byte{0x5a};
                                                   return true;
                                               });
}

struct RecordingSink final : ByteSink {
    void write(std::span<std::byte const> bytes) noexcept override { written += bytes.size(); }
    std::size_t written = 0;
};

// A virtio device on an MMIO transport, as a machine wires it (a device host, a notify handler
// that records what it is asked to serve).
template <class D>
struct Side {
    Side(GuestMemory const& memory, std::shared_ptr<D> d)
        : device(std::move(d)), transport(memory, device, irq) {
        transport.set_device_host(host);
        transport.set_notify_handler([this](std::uint32_t q) { notified.push_back(q); });
    }

    void write32(std::uint64_t offset, std::uint32_t value) {
        std::array<std::byte, 4> data;
        std::memcpy(data.data(), &value, sizeof value);
        transport.write(IoAccess{window + offset, offset}, data);
    }
    std::uint32_t read32(std::uint64_t offset) {
        std::array<std::byte, 4> data{};
        transport.read(IoAccess{window + offset, offset}, data);
        std::uint32_t value;
        std::memcpy(&value, data.data(), sizeof value);
        return value;
    }
    void write64(std::uint64_t low, std::uint64_t value) {
        write32(low, static_cast<std::uint32_t>(value));
        write32(low + 4, static_cast<std::uint32_t>(value >> 32));
    }
    // §3.1.1 with queues[i] as queue i; `ok` false stops before DRIVER_OK.
    void bring_up(std::vector<FakeDriver const*> const& queues, bool ok = true) {
        write32(reg_status, acknowledge | driver_bit);
        std::uint64_t const features = f_version_1 | f_event_idx;
        write32(reg_driver_features_sel, 0);
        write32(reg_driver_features, static_cast<std::uint32_t>(features));
        write32(reg_driver_features_sel, 1);
        write32(reg_driver_features, static_cast<std::uint32_t>(features >> 32));
        write32(reg_status, acknowledge | driver_bit | features_ok);
        for (std::uint32_t i = 0; i < queues.size(); ++i) {
            write32(reg_queue_sel, i);
            write32(reg_queue_num, queues[i]->size());
            write64(reg_queue_desc_low, queues[i]->desc_table());
            write64(reg_queue_driver_low, queues[i]->avail_ring());
            write64(reg_queue_device_low, queues[i]->used_ring());
            write32(reg_queue_ready, 1);
        }
        if (ok) write32(reg_status, acknowledge | driver_bit | features_ok | driver_ok);
    }
    void bring_up(FakeDriver const& q, bool ok = true) { bring_up(std::vector{&q}, ok); }
    std::vector<std::byte> save() const {
        StateWriter out;
        transport.save(out);
        return out.take();
    }
    void load(std::vector<std::byte> const& bytes) {
        StateReader in(bytes, "virtio.0");
        transport.load(in);
    }
    // Serves what the transport asked to be served (what the slot's executor does).
    void serve() {
        for (auto q : std::exchange(notified, {})) transport.notify(q);
    }

    NoIrq irq;
    RecordingDeviceHost host;
    std::shared_ptr<D> device;
    virtio::MmioTransport transport;
    std::vector<std::uint32_t> notified;
};

using RngSide = Side<virtio::RngDevice>;

template <class T>
void poke(std::vector<std::byte>& bytes, std::size_t offset, T value) {
    REQUIRE(offset + sizeof value <= bytes.size());
    std::memcpy(bytes.data() + offset, &value, sizeof value);
}

template <class T>
T peek(std::vector<std::byte> const& bytes, std::size_t offset) {
    T value;
    REQUIRE(offset + sizeof value <= bytes.size());
    std::memcpy(&value, bytes.data() + offset, sizeof value);
    return value;
}

// `count` 8-byte requests made available, notified and served by `side`.
void requests(FakeDriver& driver, RngSide& side, int count) {
    for (int i = 0; i < count; ++i) driver.add_chain({{driver.alloc(8), 8, true}});
    side.write32(reg_queue_notify, 0);
    side.serve();
}

// A section of a running rng that served three requests.
std::vector<std::byte> saved_section(GuestMemory const& memory) {
    FakeDriver driver{memory, 16};
    RngSide live(memory, make_rng());
    live.bring_up(driver);
    live.serve();
    requests(driver, live, 3);
    return live.save();
}

}  // namespace

TEST_CASE("A virtio-mmio section round-trips and the restored rng goes on from the saved queue indices") {
    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver driver{memory, 16};
    RngSide live(memory, make_rng());
    live.bring_up(driver);
    live.serve();
    requests(driver, live, 3);
    REQUIRE(driver.next_used());
    REQUIRE(driver.next_used());
    REQUIRE(driver.next_used());
    auto const bytes = live.save();
    CHECK(peek<std::uint32_t>(bytes, at_status) == (acknowledge | driver_bit | features_ok | driver_ok));
    CHECK(peek<std::uint64_t>(bytes, at_features) == (f_version_1 | f_event_idx));
    CHECK(peek<std::uint16_t>(bytes, at_queue_size) == 16);
    CHECK(peek<std::uint8_t>(bytes, at_active) == 1);
    CHECK(peek<std::uint16_t>(bytes, at_next_avail) == 3);
    CHECK(peek<std::uint16_t>(bytes, at_next_used) == 3);

    RngSide restored(memory, make_rng());
    restored.load(bytes);
    CHECK(restored.transport.active());
    CHECK(restored.read32(reg_status) == (acknowledge | driver_bit | features_ok | driver_ok));
    CHECK(restored.save() == bytes);
    CHECK(restored.notified == std::vector<std::uint32_t>{0});  // every queue served once
    restored.serve();
    CHECK_FALSE(driver.next_used());  // nothing was waiting: nothing repeated
    requests(driver, restored, 1);
    auto const fourth = driver.next_used();
    REQUIRE(fourth);
    CHECK(fourth->len == 8);
    CHECK(guest<std::uint16_t>(memory, driver.used_ring() + 2) == 4);
}

TEST_CASE("A request made available while the guest was saved is served once, as used entry next_used") {
    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver driver{memory, 16};
    RngSide live(memory, make_rng());
    live.bring_up(driver);
    live.serve();
    requests(driver, live, 2);
    auto const bytes = live.save();
    driver.add_chain({{driver.alloc(8), 8, true}});  // after the snapshot, before the restore runs

    RngSide restored(memory, make_rng());
    restored.load(bytes);
    restored.serve();
    REQUIRE(driver.next_used());
    REQUIRE(driver.next_used());
    auto const third = driver.next_used();
    REQUIRE(third);
    CHECK(third->len == 8);
    CHECK(guest<std::uint16_t>(memory, driver.used_ring() + 2) == 3);
    requests(driver, restored, 1);
    REQUIRE(driver.next_used());
    CHECK(guest<std::uint16_t>(memory, driver.used_ring() + 2) == 4);
}

TEST_CASE("A frozen transport serves nothing until it is thawed, then every queue once") {
    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver driver{memory, 16};
    RngSide live(memory, make_rng());
    live.bring_up(driver);
    live.serve();
    live.transport.freeze();
    requests(driver, live, 1);
    CHECK(live.transport.notify(0) == virtio::Work::done);
    CHECK_FALSE(driver.next_used());  // RAM and the device's indices stay as a snapshot saves them
    auto const bytes = live.save();
    CHECK(peek<std::uint16_t>(bytes, at_next_avail) == 0);
    live.transport.thaw();
    CHECK(live.notified == std::vector<std::uint32_t>{0});
    live.serve();
    CHECK(driver.next_used());
}

TEST_CASE("A request the rate limiter held back is given back by the snapshot and served after the restore") {
    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver driver{memory, 16};
    virtio::RateLimiterConfig const one_op{
        .bandwidth = std::nullopt,
        .ops = virtio::BucketConfig{.size = 1, .one_time_burst = 0, .refill_time = std::chrono::hours(1)}};
    RngSide live(memory, make_rng(one_op));
    live.bring_up(driver);
    live.serve();
    requests(driver, live, 2);  // the first passes, the second waits for the bucket
    REQUIRE(driver.next_used());
    CHECK_FALSE(driver.next_used());
    auto bytes = live.save();
    CHECK(peek<std::uint16_t>(bytes, at_next_avail) == 1);  // rewound over the held request
    CHECK(peek<std::uint16_t>(bytes, at_next_used) == 1);

    RngSide restored(memory, make_rng());
    restored.load(bytes);
    CHECK(restored.device->rate_limiter() == one_op);  // the limiter comes from the section
    restored.serve();
    CHECK_FALSE(driver.next_used());  // still no token: an hour's refill, the bucket empty
    CHECK(restored.host.timers.size() == 1);

    // With a token in the saved bucket the held request is served at the restore's first pass.
    std::size_t const budget =
        at_device + 1 + 1 + 8 + 8 + 8 + 8;  // ops present, size, burst, refill, burst left
    poke<std::uint64_t>(bytes, budget, 1);
    RngSide refilled(memory, make_rng());
    refilled.load(bytes);
    refilled.serve();
    auto const used = driver.next_used();
    REQUIRE(used);
    CHECK(used->len == 8);
}

TEST_CASE(
    "An inactive transport's queue registers load as the driver wrote them, and DRIVER_OK then stops the "
    "device") {
    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver driver{memory, 16};
    RngSide live(memory, make_rng());
    live.bring_up(driver, false);
    auto bytes = live.save();
    CHECK(peek<std::uint8_t>(bytes, at_active) == 0);
    poke<std::uint16_t>(bytes, at_queue_size, 3);
    poke<std::uint64_t>(bytes, at_desc, 64 * MiB);

    RngSide restored(memory, make_rng());
    restored.load(bytes);
    CHECK_FALSE(restored.transport.active());
    CHECK(restored.save() == bytes);
    restored.write32(reg_status, acknowledge | driver_bit | features_ok | driver_ok);
    CHECK_FALSE(restored.transport.active());
    CHECK(restored.read32(reg_status) & needs_reset);
}

TEST_CASE(
    "A console transmit chain cut short is given back by the snapshot and only its rest written after the "
    "restore") {
    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver rx{memory, 16, 0x10000, 0x100000};
    FakeDriver tx{memory, 16, 0x20000, 0x200000};
    RecordingSink live_out;
    Side<virtio::ConsoleDevice> live(memory, std::make_shared<virtio::ConsoleDevice>(live_out));
    live.bring_up({&rx, &tx});
    live.serve();
    std::uint64_t const length = virtio::ConsoleDevice::transmit_bytes_per_call + 100;
    tx.add_chain({{tx.alloc(length), static_cast<std::uint32_t>(length), false}});
    live.transport.notify(1);  // one call: its budget ends inside the chain
    CHECK(live_out.written == virtio::ConsoleDevice::transmit_bytes_per_call);
    CHECK_FALSE(tx.next_used());
    auto const bytes = live.save();
    std::size_t const tx_indices = at_queue_size + 2 * 27 + 1 + 6;  // two queues, active, queue 0 indices
    CHECK(peek<std::uint16_t>(bytes, tx_indices) == 0);             // next available rewound over the chain

    RecordingSink restored_out;
    Side<virtio::ConsoleDevice> restored(memory, std::make_shared<virtio::ConsoleDevice>(restored_out));
    restored.load(bytes);
    CHECK(restored.save() == bytes);
    restored.serve();
    CHECK(restored_out.written == 100);
    CHECK(tx.next_used());
}

TEST_CASE("Hostile virtio-mmio sections are refused with an error, not loaded") {
    GuestMemory memory = flat_ram(4 * MiB);
    auto const good = saved_section(memory);
    {
        RngSide check(memory, make_rng());
        REQUIRE_NOTHROW(check.load(good));
    }
    struct Case {
        char const* what;
        std::function<void(std::vector<std::byte>&)> change;
    };
    std::vector<Case> const cases{
        {"a queue size that is not a power of two",
         [](auto& b) { poke<std::uint16_t>(b, at_queue_size, 12); }},
        {"a queue size over the device's maximum",
         [](auto& b) { poke<std::uint16_t>(b, at_queue_size, 512); }},
        {"a queue size of 0", [](auto& b) { poke<std::uint16_t>(b, at_queue_size, 0); }},
        {"a descriptor table outside RAM", [](auto& b) { poke<std::uint64_t>(b, at_desc, 4 * MiB - 16); }},
        {"a descriptor table at the top of the address space",
         [](auto& b) { poke<std::uint64_t>(b, at_desc, ~std::uint64_t{0} - 15); }},
        {"requests in flight", [](auto& b) { poke<std::uint16_t>(b, at_next_avail, 5); }},
        {"a next used index ahead of next available",
         [](auto& b) { poke<std::uint16_t>(b, at_next_used, 9); }},
        {"a queue count that is not the device's",
         [](auto& b) { poke<std::uint32_t>(b, at_queue_count, 2); }},
        {"an active device without DRIVER_OK",
         [](auto& b) { poke<std::uint32_t>(b, at_status, acknowledge | driver_bit | features_ok); }},
        {"DRIVER_OK on an inactive device that did not ask for a reset",
         [](auto& b) { poke<std::uint8_t>(b, at_active, 0); }},
        {"accepted features the device does not offer",
         [](auto& b) { poke<std::uint64_t>(b, at_features, f_version_1 | (std::uint64_t{1} << 40)); }},
        {"a flag that is neither 0 nor 1", [](auto& b) { poke<std::uint8_t>(b, at_active, 7); }},
        {"unknown interrupt status bits", [](auto& b) { poke<std::uint32_t>(b, at_interrupt_status, 4); }},
        {"a token bucket fuller than its size",
         [](auto& b) {
             poke<std::uint8_t>(b, at_device, 1);  // a bandwidth bucket where there was none
             b.resize(at_device + 1);
             for (std::uint64_t v :
                  {std::uint64_t{10}, std::uint64_t{0}, std::uint64_t{1000}, std::uint64_t{0},
                   std::uint64_t{11}, std::uint64_t{0}, std::uint64_t{0}}) {
                 auto const* p = reinterpret_cast<std::byte const*>(&v);
                 b.insert(b.end(), p, p + sizeof v);
             }
             b.push_back(std::byte{0});  // no ops bucket
         }},
        {"a truncated section", [](auto& b) { b.resize(b.size() - 1); }},
        {"bytes left over", [](auto& b) { b.push_back(std::byte{0}); }},
    };
    for (auto const& c : cases) {
        SECTION(c.what) {
            auto bytes = good;
            c.change(bytes);
            RngSide restored(memory, make_rng());
            CHECK_THROWS_AS(restored.load(bytes), Error);
        }
    }
}

}  // namespace kvmlet::test
