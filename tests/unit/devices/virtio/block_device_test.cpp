// virtio-blk requests that succeed: each request type, buffer layouts, config space, features,
// interrupts, and what FLUSH guarantees.
#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tests/unit/devices/virtio/block_test_rig.hpp"

namespace kvmlet::test {
namespace {

namespace blk = virtio::blk;
using virtio::BlockDevice;

constexpr std::uint64_t image_size = 1024 * 1024;

template <class T>
T config_field(BlockDevice const& device, std::uint64_t offset) {
    T value{};
    device.read_config(offset, std::as_writable_bytes(std::span{&value, 1}));
    return value;
}

}  // namespace

TEST_CASE("A read request fills the guest's buffer and uses the data plus the status byte") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    auto data = rig.data_in(4096);
    auto status = rig.status();
    auto used = rig.run({rig.header(blk::request_type::in, 3), data, status});
    CHECK(used.len == 4097);
    CHECK(rig.status_at(status) == blk::status::ok);
    CHECK(rig.guest_data(data) == image.expected(3 * 512, 4096));
    CHECK(rig.irq.used == 1);
    CHECK(rig.irq.last_queue == 0);
    CHECK(rig.device.counters().reads.value() == 1);
    CHECK(rig.device.counters().bytes_read.value() == 4096);
}

TEST_CASE("A write request reaches the image file and uses only the status byte") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    auto bytes = filled(1024, 5);
    auto status = rig.status();
    auto used = rig.run({rig.header(blk::request_type::out, 10), rig.data_out(bytes), status});
    CHECK(used.len == 1);
    CHECK(rig.status_at(status) == blk::status::ok);
    CHECK(image.read(10 * 512, 1024) == bytes);
    CHECK(image.read(9 * 512, 512) == image.expected(9 * 512, 512));
    CHECK(image.read(12 * 512, 512) == image.expected(12 * 512, 512));
    CHECK(rig.device.counters().writes.value() == 1);
}

TEST_CASE("Data, header and status may be split or merged across buffers in any way") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    SECTION("a header split in two, then data in three pieces, for a write") {
        auto h = rig.header(blk::request_type::out, 4);
        auto bytes = filled(1536, 77);
        auto d = rig.data_out(bytes);
        auto status = rig.status();
        auto used = rig.run({{h.addr, 7, false},
                             {h.addr + 7, 9, false},
                             {d.addr, 100, false},
                             {d.addr + 100, 1000, false},
                             {d.addr + 1100, 436, false},
                             status});
        CHECK(used.len == 1);
        CHECK(rig.status_at(status) == blk::status::ok);
        CHECK(image.read(4 * 512, 1536) == bytes);
    }
    SECTION("header and write data in one buffer") {
        blk::RequestHeader h{blk::request_type::out, 0, 6};
        auto bytes = filled(512, 1);
        std::vector<std::uint8_t> whole(16 + 512);
        std::memcpy(whole.data(), &h, 16);
        std::copy(bytes.begin(), bytes.end(), whole.begin() + 16);
        auto status = rig.status();
        rig.run({rig.data_out(whole), status});
        CHECK(rig.status_at(status) == blk::status::ok);
        CHECK(image.read(6 * 512, 512) == bytes);
    }
    SECTION("read data and status in one writable buffer") {
        auto both = rig.data_in(513);
        auto used = rig.run({rig.header(blk::request_type::in, 1), both});
        CHECK(used.len == 513);
        auto got = rig.guest_data(both);
        CHECK(got.back() == blk::status::ok);
        got.pop_back();
        CHECK(got == image.expected(512, 512));
    }
    SECTION("an indirect chain") {
        auto data = rig.data_in(2048);
        auto status = rig.status();
        rig.driver.recycle_descriptors();
        rig.driver.add_indirect_chain({rig.header(blk::request_type::in, 8), data, status});
        rig.device.process_queue(0);
        auto used = rig.driver.next_used();
        REQUIRE(used);
        CHECK(used->len == 2049);
        CHECK(rig.guest_data(data) == image.expected(8 * 512, 2048));
    }
}

TEST_CASE("A write acknowledged before a completed FLUSH is on disk, as a second file descriptor sees") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    auto bytes = filled(8192, 33);
    auto write_status = rig.status();
    rig.run({rig.header(blk::request_type::out, 64), rig.data_out(bytes), write_status});
    REQUIRE(rig.status_at(write_status) == blk::status::ok);
    auto const before = cache_stat(image.path());
    if (before && before->dirty == 0) WARN("the kernel wrote the page back before the FLUSH: a weaker check");
    auto flush_status = rig.status();
    auto used = rig.run({rig.header(blk::request_type::flush, 0), flush_status});
    CHECK(used.len == 1);
    CHECK(rig.status_at(flush_status) == blk::status::ok);
    CHECK(rig.device.counters().flushes.value() == 1);
    CHECK(image.read(64 * 512, 8192) == bytes);
    // After fdatasync nothing of the file is dirty or under writeback in the page cache.
    if (auto stat = cache_stat(image.path())) {
        CHECK(stat->dirty == 0);
        CHECK(stat->writeback == 0);
    } else {
        WARN("cachestat(2) unavailable: only the data was checked, not that it left the page cache");
    }
}

TEST_CASE("Without FLUSH negotiated every write is stable before it is acknowledged") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()}, virtio::bit(blk::feature::flush));
    auto bytes = filled(4096, 3);
    auto status = rig.status();
    rig.run({rig.header(blk::request_type::out, 16), rig.data_out(bytes), status});
    CHECK(rig.status_at(status) == blk::status::ok);
    CHECK(rig.device.counters().flushes.value() == 0);
    if (auto stat = cache_stat(image.path())) {
        CHECK(stat->dirty == 0);
        CHECK(stat->writeback == 0);
    } else {
        WARN("cachestat(2) unavailable: cannot tell whether the write left the page cache");
    }
}

TEST_CASE("GET_ID writes the configured id, NUL-padded to 20 bytes") {
    TempImage image(image_size);
    std::string const id =
        GENERATE(std::string("vda-root"), std::string("exactly-twenty-bytes"), std::string());
    BlockRig rig({.path = image.path(), .id = id});
    auto data = rig.data_in(blk::id_bytes);
    auto status = rig.status();
    auto used = rig.run({rig.header(blk::request_type::get_id, 0), data, status});
    CHECK(used.len == blk::id_bytes + 1);
    CHECK(rig.status_at(status) == blk::status::ok);
    std::vector<std::uint8_t> want(blk::id_bytes, 0);
    std::copy(id.begin(), id.end(), want.begin());
    CHECK(rig.guest_data(data) == want);
}

TEST_CASE("GET_ID into a buffer shorter than 20 bytes writes what fits") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path(), .id = "serial-number-42"});
    auto data = rig.data_in(6);
    auto status = rig.status();
    auto used = rig.run({rig.header(blk::request_type::get_id, 0), data, status});
    CHECK(used.len == 7);
    CHECK(rig.guest_data(data) == std::vector<std::uint8_t>{'s', 'e', 'r', 'i', 'a', 'l'});
}

TEST_CASE("Discard and write zeroes make ranges read as zeros") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    std::uint32_t const type = GENERATE(blk::request_type::discard, blk::request_type::write_zeroes);
    std::uint32_t const flags = type == blk::request_type::write_zeroes ? blk::segment_flag_unmap : 0;
    blk::DiscardSegment segments[] = {{16, 8, flags}, {100, 16, 0}};
    auto status = rig.status();
    auto used = rig.run({rig.header(type, 0),
                         {rig.driver.alloc_with(std::as_bytes(std::span{segments})), sizeof segments, false},
                         status});
    CHECK(used.len == 1);
    CHECK(rig.status_at(status) == blk::status::ok);
    CHECK(image.read(16 * 512, 8 * 512) == std::vector<std::uint8_t>(8 * 512, 0));
    CHECK(image.read(100 * 512, 16 * 512) == std::vector<std::uint8_t>(16 * 512, 0));
    CHECK(image.read(15 * 512, 512) == image.expected(15 * 512, 512));
    CHECK(image.read(24 * 512, 512) == image.expected(24 * 512, 512));
}

TEST_CASE("Ranges discarded or zeroed count against a call's work bound, like data moved") {
    // Eight ranges of 16 MiB in one request: 128 MiB of work in 145 bytes of descriptors.
    constexpr std::uint64_t big = 16 * 1024 * 1024;
    TempImage image(big);
    BlockRig rig({.path = image.path()});
    std::array<blk::DiscardSegment, 8> segments{};
    for (auto& segment : segments) segment = {0, static_cast<std::uint32_t>(big / 512), 0};
    for (int i = 0; i < 2; ++i) {
        auto status = rig.status();
        rig.driver.add_chain(
            {rig.header(blk::request_type::discard, 0),
             {rig.driver.alloc_with(std::as_bytes(std::span{segments})), sizeof segments, false},
             status});
    }
    static_assert(8 * big > virtio::BlockDevice::bytes_per_call);
    CHECK(rig.device.process_queue(0) == virtio::Work::more);  // one request, then the bound
    CHECK(rig.driver.next_used());
    CHECK_FALSE(rig.driver.next_used());
    CHECK(rig.device.process_queue(0) == virtio::Work::more);  // the second, and the bound again
    CHECK(rig.device.process_queue(0) == virtio::Work::done);  // nothing left
    CHECK(rig.driver.next_used());
}

TEST_CASE("The config space holds the capacity and the limits the device enforces") {
    TempImage image(image_size + 300);  // the partial sector at the end is not part of the disk
    BlockRig rig({.path = image.path()});
    auto const& d = rig.device;
    CHECK(config_field<std::uint64_t>(d, 0) == image_size / 512);
    CHECK(config_field<std::uint32_t>(d, 8) == BlockDevice::size_max);
    CHECK(config_field<std::uint32_t>(d, 12) == BlockDevice::seg_max);
    CHECK(config_field<std::uint32_t>(d, 20) == 512);
    CHECK(config_field<std::uint32_t>(d, 36) == BlockDevice::max_range_sectors);
    CHECK(config_field<std::uint32_t>(d, 40) == BlockDevice::max_range_segments);
    CHECK(config_field<std::uint32_t>(d, 44) == 1);
    CHECK(config_field<std::uint32_t>(d, 48) == BlockDevice::max_range_sectors);
    CHECK(config_field<std::uint32_t>(d, 52) == BlockDevice::max_range_segments);
    CHECK(config_field<std::uint8_t>(d, 56) == 1);
    CHECK(config_field<std::uint32_t>(d, 2) == 0);   // capacity's upper bytes: a 1 MiB disk
    CHECK(config_field<std::uint64_t>(d, 68) == 0);  // straddles the end: zeros past it
    CHECK(config_field<std::uint64_t>(d, 4096) == 0);
    CHECK(config_field<std::uint64_t>(d, UINT64_MAX - 2) == 0);
}

TEST_CASE("A writable disk offers discard and write zeroes, a read-only one offers RO instead") {
    TempImage image(image_size);
    auto const common = virtio::bit(blk::feature::size_max) | virtio::bit(blk::feature::seg_max) |
                        virtio::bit(blk::feature::blk_size) | virtio::bit(blk::feature::flush) |
                        virtio::bit(virtio::feature::ring_indirect_desc) |
                        virtio::bit(virtio::feature::ring_event_idx);
    CHECK(BlockDevice(Disk({.path = image.path()})).features() ==
          (common | virtio::bit(blk::feature::discard) | virtio::bit(blk::feature::write_zeroes)));
    CHECK(BlockDevice(Disk({.path = image.path(), .read_only = true})).features() ==
          (common | virtio::bit(blk::feature::ro)));
    BlockDevice device(Disk({.path = image.path()}));
    CHECK(device.type() == virtio::DeviceType::block);
    CHECK(device.queue_max_sizes().size() == 1);
    CHECK(device.queue_max_sizes()[0] == 256);
}

TEST_CASE("Requests made available together are served in one pass with one interrupt") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    std::vector<Buffer> data, status;
    for (std::uint64_t i = 0; i < 32; ++i) {
        data.push_back(rig.data_in(512));
        status.push_back(rig.status());
        rig.driver.add_chain({rig.header(blk::request_type::in, i), data.back(), status.back()});
    }
    rig.device.process_queue(0);
    CHECK(rig.irq.used == 1);
    for (std::uint64_t i = 0; i < 32; ++i) {
        auto used = rig.driver.next_used();
        REQUIRE(used);
        CHECK(used->len == 513);
        CHECK(rig.status_at(status[i]) == blk::status::ok);
        CHECK(rig.guest_data(data[i]) == image.expected(i * 512, 512));
    }
    rig.device.process_queue(0);  // nothing new: no interrupt
    CHECK(rig.irq.used == 1);
    CHECK(rig.device.counters().requests.value() == 32);
}

TEST_CASE("cache=none serves a guest buffer that is not aligned for O_DIRECT") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path(), .cache = CacheMode::none});
    auto bytes = filled(4096, 200);
    auto odd = rig.driver.alloc(4096 + 1) + 1;
    REQUIRE(rig.memory.write_bytes(GuestAddress{odd}, bytes_of(bytes)));
    auto status = rig.status();
    rig.run({rig.header(blk::request_type::out, 8), {odd, 4096, false}, status});
    CHECK(rig.status_at(status) == blk::status::ok);
    CHECK(image.read(8 * 512, 4096) == bytes);

    auto odd_in = rig.driver.alloc(4096 + 3) + 3;
    status = rig.status();
    auto used = rig.run({rig.header(blk::request_type::in, 8), {odd_in, 4096, true}, status});
    CHECK(used.len == 4097);
    CHECK(rig.status_at(status) == blk::status::ok);
    CHECK(rig.guest_data({odd_in, 4096, true}) == bytes);
    CHECK(rig.device.disk().bounced() == 2);
}

TEST_CASE("A replaced disk serves the next request, with its new capacity and a config-change interrupt") {
    TempImage first(image_size);
    TempImage second(2 * image_size);
    BlockRig rig({.path = first.path()});
    blk::Config before{};
    rig.device.read_config(0, std::as_writable_bytes(std::span{&before, 1}));
    CHECK(before.capacity == image_size / 512);

    Disk replacement({.path = second.path()});
    REQUIRE(rig.device.replace_disk(std::move(replacement)));
    CHECK(rig.irq.config == 1);
    blk::Config after{};
    rig.device.read_config(0, std::as_writable_bytes(std::span{&after, 1}));
    CHECK(after.capacity == 2 * image_size / 512);

    // A read past the old end now reaches the new file.
    auto data = rig.data_in(512);
    auto status = rig.status();
    rig.run({rig.header(blk::request_type::in, image_size / 512 + 1), data, status});
    CHECK(rig.status_at(status) == blk::status::ok);
    CHECK(rig.guest_data(data) == second.expected(image_size + 512, 512));
}

TEST_CASE("A disk cannot be replaced by one with another read-only setting") {
    TempImage first(image_size);
    TempImage second(image_size);
    BlockRig rig({.path = first.path()});
    CHECK_FALSE(rig.device.replace_disk(Disk({.path = second.path(), .read_only = true})));
    CHECK(rig.irq.config == 0);
    CHECK(rig.device.disk().config().path == first.path());
}

}  // namespace kvmlet::test
