#include <catch2/catch.hpp>
#include <functional>
#include <string>

#include "devices/virtio/console/console_device.hpp"
#include "tests/unit/support/fake_device_host.hpp"
#include "tests/unit/support/fake_driver.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"

namespace kvmlet::test {
namespace {

struct RecordingSink final : ByteSink {
    void write(std::span<std::byte const> bytes) noexcept override {
        for (auto b : bytes) out.push_back(static_cast<char>(b));
    }
    std::string out;
};

struct RecordingInterrupt final : virtio::Interrupt {
    void used_buffers(std::size_t queue) noexcept override { used.push_back(queue); }
    void config_changed() noexcept override { ++config; }
    void needs_reset() noexcept override { ++resets; }
    std::vector<std::size_t> used;
    int config = 0;
    int resets = 0;
};

std::span<std::byte const> bytes_of(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

struct ConsoleRig {
    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver rx{memory, 16, 0x10000, 0x100000};
    FakeDriver tx{memory, 16, 0x20000, 0x200000};
    RecordingSink sink;
    RecordingInterrupt interrupt;
    RecordingDeviceHost host;
    virtio::ConsoleDevice console{sink};

    void activate() {
        std::vector<virtio::SplitQueue> queues;
        queues.push_back(virtio::SplitQueue::activate(memory, rx.config(), 256, false, false).value());
        queues.push_back(virtio::SplitQueue::activate(memory, tx.config(), 256, false, false).value());
        REQUIRE(console.activate({memory, std::move(queues), 0, interrupt, host}));
    }
    std::string guest_string(std::uint64_t at, std::size_t len) {
        std::string s(len, '\0');
        REQUIRE(memory.read_bytes(GuestAddress{at}, std::as_writable_bytes(std::span(s.data(), s.size()))));
        return s;
    }
};

TEST_CASE("virtio-console writes what the guest transmits to its sink, across buffers") {
    ConsoleRig rig;
    rig.activate();
    auto a = rig.tx.alloc_with(bytes_of("hello, "));
    auto b = rig.tx.alloc_with(bytes_of("world\n"));
    rig.tx.add_chain({{a, 7, false}, {b, 6, false}});
    rig.console.process_queue(virtio::ConsoleDevice::transmit_queue);
    CHECK(rig.sink.out == "hello, world\n");
    auto used = rig.tx.next_used();
    REQUIRE(used);
    CHECK(used->len == 0);
    CHECK(rig.interrupt.used == std::vector<std::size_t>{virtio::ConsoleDevice::transmit_queue});
    CHECK(rig.console.bytes_out() == 13);
}

TEST_CASE("virtio-console writes at most a budget per call and finishes a larger chain on the next") {
    ConsoleRig rig;
    rig.activate();
    constexpr std::size_t len = 1536 * 1024;
    std::string data(len, '\0');
    for (std::size_t i = 0; i < len; ++i) data[i] = static_cast<char>('a' + i % 26);
    auto a = rig.tx.alloc_with(bytes_of(std::string_view(data).substr(0, len / 2)));
    auto b = rig.tx.alloc_with(bytes_of(std::string_view(data).substr(len / 2)));
    rig.tx.add_chain({{a, len / 2, false}, {b, len / 2, false}});
    CHECK(rig.console.process_queue(virtio::ConsoleDevice::transmit_queue) == virtio::Work::more);
    CHECK(rig.sink.out.size() == virtio::ConsoleDevice::transmit_bytes_per_call);
    CHECK_FALSE(rig.tx.next_used());  // still being written
    CHECK(rig.console.process_queue(virtio::ConsoleDevice::transmit_queue) == virtio::Work::done);
    CHECK(rig.sink.out == data);
    auto used = rig.tx.next_used();
    REQUIRE(used);
    CHECK(rig.console.bytes_out() == len);
}

TEST_CASE("virtio-console ends a call while the driver keeps re-posting transmit chains") {
    // A second vCPU that makes each used chain available again at once.
    GuestMemory memory = flat_ram(4 * MiB);
    FakeDriver rx{memory, 16, 0x10000, 0x100000};
    FakeDriver tx{memory, 16, 0x20000, 0x200000};
    RecordingInterrupt interrupt;
    std::uint16_t head = 0;
    std::uint32_t writes = 0;
    struct RepostingSink final : ByteSink {
        std::function<void()> on_write;
        void write(std::span<std::byte const>) noexcept override { on_write(); }
    } sink;
    sink.on_write = [&] {
        ++writes;
        tx.publish(head);
    };
    virtio::ConsoleDevice console{sink};
    std::vector<virtio::SplitQueue> queues;
    queues.push_back(virtio::SplitQueue::activate(memory, rx.config(), 256, false, false).value());
    queues.push_back(virtio::SplitQueue::activate(memory, tx.config(), 256, false, false).value());
    RecordingDeviceHost host;
    REQUIRE(console.activate({memory, std::move(queues), 0, interrupt, host}));
    auto buf = tx.alloc_with(bytes_of("x"));
    head = tx.add_chain({{buf, 1, false}});
    CHECK(console.process_queue(virtio::ConsoleDevice::transmit_queue) == virtio::Work::more);
    CHECK(writes == virtio::ConsoleDevice::chains_per_call);
}

TEST_CASE("virtio-console input uses a bounded number of chains per call") {
    // Zero-length receive buffers, re-posted as fast as they are used: input is never taken, and
    // the call still ends.
    ConsoleRig rig;
    rig.activate();
    auto buf = rig.rx.alloc(4);
    auto head = rig.rx.add_chain({{buf, 0, true}});
    for (int i = 0; i < 15; ++i) rig.rx.publish(head);
    CHECK(rig.console.enqueue_input(bytes_of("abc")) == 0);
}

TEST_CASE("virtio-console input fills receive buffers and says how much it took") {
    ConsoleRig rig;
    rig.activate();
    CHECK(rig.console.enqueue_input(bytes_of("abc")) == 0);  // no buffers yet: nothing taken
    auto buf = rig.rx.alloc(4);
    rig.rx.add_chain({{buf, 4, true}});
    CHECK(rig.console.enqueue_input(bytes_of("abcdef")) == 4);
    auto used = rig.rx.next_used();
    REQUIRE(used);
    CHECK(used->len == 4);
    CHECK(rig.guest_string(buf, 4) == "abcd");
    CHECK(rig.interrupt.used == std::vector<std::size_t>{virtio::ConsoleDevice::receive_queue});
}

TEST_CASE("virtio-console takes no input before activation or after reset") {
    ConsoleRig rig;
    CHECK(rig.console.enqueue_input(bytes_of("x")) == 0);
    rig.activate();
    rig.console.reset();
    CHECK(rig.console.enqueue_input(bytes_of("x")) == 0);
    rig.console.process_queue(virtio::ConsoleDevice::transmit_queue);  // no crash, nothing out
    CHECK(rig.sink.out.empty());
}

TEST_CASE("virtio-console returns a receive buffer outside RAM empty and keeps the input") {
    ConsoleRig rig;
    rig.activate();
    rig.rx.add_chain({{8 * MiB, 16, true}});
    CHECK(rig.console.enqueue_input(bytes_of("keep")) == 0);
    auto used = rig.rx.next_used();
    REQUIRE(used);
    CHECK(used->len == 0);
    auto buf = rig.rx.alloc(8);
    rig.rx.add_chain({{buf, 8, true}});
    CHECK(rig.console.enqueue_input(bytes_of("keep")) == 4);
    CHECK(rig.guest_string(buf, 4) == "keep");
}

TEST_CASE("virtio-console drops transmit data outside RAM and keeps serving") {
    ConsoleRig rig;
    rig.activate();
    rig.tx.add_chain({{8 * MiB, 16, false}});
    auto ok = rig.tx.alloc_with(bytes_of("ok"));
    rig.tx.add_chain({{ok, 2, false}});
    rig.console.process_queue(virtio::ConsoleDevice::transmit_queue);
    CHECK(rig.sink.out == "ok");
    CHECK(rig.tx.next_used());
    CHECK(rig.tx.next_used());
}

TEST_CASE("virtio-console asks for a reset when the driver's avail index runs ahead") {
    ConsoleRig rig;
    rig.activate();
    rig.tx.set_avail_idx(100);
    rig.console.process_queue(virtio::ConsoleDevice::transmit_queue);
    CHECK(rig.interrupt.resets == 1);
}

}  // namespace
}  // namespace kvmlet::test
