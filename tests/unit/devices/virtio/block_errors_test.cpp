// virtio-blk requests that fail: each fails alone, with IOERR, UNSUPP or a used length of 0,
// and the request after it is served as usual.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/unit/devices/virtio/block_test_rig.hpp"

namespace kvmlet::test {
namespace {

namespace blk = virtio::blk;

constexpr std::uint64_t image_size = 1024 * 1024;
constexpr std::uint64_t capacity = image_size / 512;
constexpr std::uint64_t outside_ram = BlockRig::ram_size + 4096;

// Everything written to stderr while it lives (the log goes there).
class StderrCapture {
public:
    StderrCapture() : file_(std::tmpfile()), saved_(::dup(STDERR_FILENO)) {
        REQUIRE(file_);
        REQUIRE(saved_ >= 0);
        REQUIRE(::dup2(::fileno(file_), STDERR_FILENO) >= 0);
    }
    StderrCapture(StderrCapture const&) = delete;
    StderrCapture& operator=(StderrCapture const&) = delete;
    ~StderrCapture() {
        restore();
        std::fclose(file_);
    }
    std::string text() {
        restore();
        std::string out;
        std::rewind(file_);
        for (int c; (c = std::fgetc(file_)) != EOF;) out.push_back(static_cast<char>(c));
        return out;
    }

private:
    void restore() {
        if (saved_ < 0) return;
        ::dup2(saved_, STDERR_FILENO);
        ::close(saved_);
        saved_ = -1;
    }
    std::FILE* file_;
    int saved_;
};

std::size_t count_of(std::string const& text, std::string const& word) {
    std::size_t n = 0;
    for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
    return n;
}

// A good read of sector 0 after a failure: the device is still serving.
void expect_next_read_works(BlockRig& rig, TempImage const& image) {
    auto data = rig.data_in(512);
    auto status = rig.status();
    auto used = rig.run({rig.header(blk::request_type::in, 0), data, status});
    CHECK(used.len == 513);
    CHECK(rig.status_at(status) == blk::status::ok);
    CHECK(rig.guest_data(data) == image.expected(0, 512));
}

}  // namespace

TEST_CASE("A request with a data buffer outside RAM goes back unused and the next request still works") {
    // The queue checks every buffer against RAM when it pops the chain: the device never sees it.
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    bool const reading = GENERATE(true, false);
    std::uint64_t const addr = GENERATE(outside_ram, BlockRig::ram_size - 100, UINT64_MAX - 1000);
    auto status = rig.status();
    auto type = reading ? blk::request_type::in : blk::request_type::out;
    auto used = rig.run({rig.header(type, 0), {addr, 512, reading}, status});
    CHECK(used.len == 0);
    CHECK(rig.status_at(status) == 0xff);  // not written
    CHECK(rig.device.counters().requests.value() == 0);
    CHECK(image.read(0, 4096) == image.expected(0, 4096));
    expect_next_read_works(rig, image);
    CHECK(rig.irq.resets == 0);
}

TEST_CASE("Requests past the end of the disk fail with IOERR, however large the sector") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    bool const reading = GENERATE(true, false);
    auto const [sector, len] = GENERATE(table<std::uint64_t, std::uint32_t>({
        {capacity, 512},
        {capacity - 1, 1024},
        {UINT64_MAX, 512},
        {UINT64_MAX / 512 + 1, 512},  // sector * 512 wraps to 0
        {capacity + 1, 0},
    }));
    auto status = rig.status();
    auto type = reading ? blk::request_type::in : blk::request_type::out;
    std::vector<Buffer> chain{rig.header(type, sector)};
    if (len > 0) chain.push_back(reading ? rig.data_in(len) : rig.data_out(filled(len, 1)));
    chain.push_back(status);
    auto used = rig.run(chain);
    CHECK(used.len == 1);
    CHECK(rig.status_at(status) == blk::status::ioerr);
    CHECK(image.read(0, image_size) == image.expected(0, image_size));
    expect_next_read_works(rig, image);
}

TEST_CASE("The last sector of the disk can be read and written") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    auto bytes = filled(512, 99);
    auto status = rig.status();
    rig.run({rig.header(blk::request_type::out, capacity - 1), rig.data_out(bytes), status});
    CHECK(rig.status_at(status) == blk::status::ok);
    CHECK(image.read(image_size - 512, 512) == bytes);
}

TEST_CASE("A write to a read-only disk fails with IOERR, leaves the image alone and is logged once") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path(), .read_only = true});
    StderrCapture stderr_text;
    for (int i = 0; i < 3; ++i) {
        auto status = rig.status();
        auto used = rig.run({rig.header(blk::request_type::out, 0), rig.data_out(filled(512, 1)), status});
        CHECK(used.len == 1);
        CHECK(rig.status_at(status) == blk::status::ioerr);
    }
    std::string log = stderr_text.text();
    CHECK(count_of(log, "read-only") == 1);
    CHECK(count_of(log, "\n") == 1);
    CHECK(image.read(0, 4096) == image.expected(0, 4096));
    expect_next_read_works(rig, image);
}

TEST_CASE("Discard and write zeroes on a read-only disk or without the feature are refused") {
    TempImage image(image_size);
    blk::DiscardSegment segment{0, 8, 0};
    auto const type = GENERATE(blk::request_type::discard, blk::request_type::write_zeroes);
    SECTION("not negotiated: UNSUPP") {
        auto const feature =
            type == blk::request_type::discard ? blk::feature::discard : blk::feature::write_zeroes;
        BlockRig rig({.path = image.path()}, virtio::bit(feature));
        auto status = rig.status();
        rig.run({rig.header(type, 0),
                 {rig.driver.alloc_with(std::as_bytes(std::span{&segment, 1})), 16, false},
                 status});
        CHECK(rig.status_at(status) == blk::status::unsupp);
        CHECK(rig.device.counters().unsupported.value() == 1);
    }
    SECTION("on a read-only disk, even if the driver acks the bits it was not offered: IOERR") {
        BlockRig rig({.path = image.path(), .read_only = true});
        std::vector<virtio::SplitQueue> queues;
        rig.device.reset();
        auto queue = virtio::SplitQueue::activate(rig.memory, rig.driver.config(), 256, false, true);
        REQUIRE(queue);
        queues.push_back(std::move(queue).value());
        REQUIRE(rig.device.activate({rig.memory, std::move(queues), ~std::uint64_t{0}, rig.irq, rig.host}));
        auto status = rig.status();
        rig.run({rig.header(type, 0),
                 {rig.driver.alloc_with(std::as_bytes(std::span{&segment, 1})), 16, false},
                 status});
        CHECK(rig.status_at(status) == blk::status::ioerr);
    }
    CHECK(image.read(0, 4096) == image.expected(0, 4096));
}

TEST_CASE("Discard and write zeroes segments are checked before anything is zeroed") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    auto const [type, segment, want] = GENERATE(table<std::uint32_t, blk::DiscardSegment, std::uint8_t>({
        {blk::request_type::discard, {0, 8, blk::segment_flag_unmap}, blk::status::unsupp},  // §5.2.6.2
        {blk::request_type::write_zeroes, {0, 8, 2}, blk::status::unsupp},                   // reserved flag
        {blk::request_type::discard, {capacity - 4, 8, 0}, blk::status::ioerr},
        {blk::request_type::write_zeroes, {UINT64_MAX, 1, 0}, blk::status::ioerr},
        {blk::request_type::write_zeroes,
         {0, virtio::BlockDevice::max_range_sectors + 1, 0},
         blk::status::ioerr},
    }));
    auto status = rig.status();
    rig.run({rig.header(type, 0),
             {rig.driver.alloc_with(std::as_bytes(std::span{&segment, 1})), 16, false},
             status});
    CHECK(rig.status_at(status) == want);
    CHECK(image.read(0, image_size) == image.expected(0, image_size));
}

TEST_CASE("Discard with a partial segment, none, or too many fails with IOERR") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    std::uint32_t const bytes = GENERATE(0u, 15u, 17u, 16u * (virtio::BlockDevice::max_range_segments + 1));
    std::vector<std::uint8_t> segments(bytes, 0);
    auto status = rig.status();
    std::vector<Buffer> chain{rig.header(blk::request_type::discard, 0)};
    if (bytes > 0) chain.push_back(rig.data_out(segments));
    chain.push_back(status);
    rig.run(chain);
    CHECK(rig.status_at(status) == blk::status::ioerr);
}

TEST_CASE("An unknown request type gets UNSUPP") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    std::uint32_t const type = GENERATE(2u, 3u, 5u, 10u, 14u, 15u, 0x7fu, 0x80000000u);
    auto status = rig.status();
    auto used = rig.run({rig.header(type, 0), status});
    CHECK(used.len == 1);
    CHECK(rig.status_at(status) == blk::status::unsupp);
    expect_next_read_works(rig, image);
}

TEST_CASE("A header shorter than 16 bytes gets IOERR") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    auto h = rig.header(blk::request_type::in, 0);
    auto status = rig.status();
    auto used = rig.run({{h.addr, 12, false}, rig.data_in(512), status});
    CHECK(used.len == 1);
    CHECK(rig.status_at(status) == blk::status::ioerr);
    expect_next_read_works(rig, image);
}

TEST_CASE("A request whose header or status byte lies outside RAM goes back unused") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    auto status = rig.status();
    CHECK(rig.run({{outside_ram, 16, false}, rig.data_in(512), status}).len == 0);
    CHECK(rig.status_at(status) == 0xff);
    CHECK(rig.run({rig.header(blk::request_type::in, 0), rig.data_in(512), {outside_ram, 1, true}}).len == 0);
    CHECK(rig.device.counters().requests.value() == 0);
    expect_next_read_works(rig, image);
}

TEST_CASE("Transfers that are not whole sectors get IOERR") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    bool const reading = GENERATE(true, false);
    std::uint32_t const len = GENERATE(1u, 511u, 513u);
    auto status = rig.status();
    auto type = reading ? blk::request_type::in : blk::request_type::out;
    rig.run({rig.header(type, 0), reading ? rig.data_in(len) : rig.data_out(filled(len, 1)), status});
    CHECK(rig.status_at(status) == blk::status::ioerr);
    CHECK(image.read(0, 4096) == image.expected(0, 4096));
}

TEST_CASE("A chain without a writable status byte is returned with used length 0") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    SECTION("the status buffer is device-readable") {
        auto status = rig.data_out({0xff});
        auto used = rig.run({rig.header(blk::request_type::out, 0), rig.data_out(filled(512, 1)), status});
        CHECK(used.len == 0);
        CHECK(rig.guest_data(status) == std::vector<std::uint8_t>{0xff});
        CHECK(image.read(0, 512) == image.expected(0, 512));
    }
    SECTION("there is no status buffer at all") {
        auto used = rig.run({rig.header(blk::request_type::flush, 0)});
        CHECK(used.len == 0);
    }
    SECTION("the only writable buffer is empty") {
        auto used = rig.run({rig.header(blk::request_type::flush, 0), {rig.driver.alloc(1), 0, true}});
        CHECK(used.len == 0);
    }
    CHECK(rig.device.counters().no_status.value() == 1);
    expect_next_read_works(rig, image);
}

TEST_CASE("A broken queue asks for a reset once, and a reset device serves again") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    rig.driver.set_avail_idx(1000);  // far ahead of the device: the queue cannot be trusted
    rig.device.process_queue(0);
    rig.device.process_queue(0);
    CHECK(rig.irq.resets == 1);
    CHECK(rig.irq.used == 0);

    rig.device.reset();
    rig.device.process_queue(0);  // not active: nothing happens
    FakeDriver fresh(rig.memory, 256, 0x40000, 0x200000);
    std::vector<virtio::SplitQueue> queues;
    auto queue = virtio::SplitQueue::activate(rig.memory, fresh.config(), 256, false, true);
    REQUIRE(queue);
    queues.push_back(std::move(queue).value());
    REQUIRE(rig.device.activate({rig.memory, std::move(queues), rig.device.features(), rig.irq, rig.host}));
    auto data = fresh.alloc(512);
    auto status = fresh.alloc(1);
    blk::RequestHeader h{blk::request_type::in, 0, 0};
    auto header = fresh.alloc_with(std::as_bytes(std::span{&h, 1}));
    fresh.add_chain({{header, 16, false}, {data, 512, true}, {status, 1, true}});
    rig.device.process_queue(0);
    auto used = fresh.next_used();
    REQUIRE(used);
    CHECK(used->len == 513);
    CHECK(guest<std::uint8_t>(rig.memory, status) == blk::status::ok);
}

TEST_CASE("A read error from the host becomes IOERR for that request only") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    REQUIRE(::truncate(image.path().c_str(), 4096) == 0);  // the image shrinks behind the device
    auto status = rig.status();
    auto used = rig.run({rig.header(blk::request_type::in, 100), rig.data_in(512), status});
    CHECK(used.len == 1);
    CHECK(rig.status_at(status) == blk::status::ioerr);
    expect_next_read_works(rig, image);
}

TEST_CASE("Queue notifications for other queues or an inactive device are ignored") {
    TempImage image(image_size);
    BlockRig rig({.path = image.path()});
    rig.driver.add_chain({rig.header(blk::request_type::flush, 0), rig.status()});
    rig.device.process_queue(1);
    CHECK_FALSE(rig.driver.next_used());
    rig.device.process_queue(0);
    CHECK(rig.driver.next_used());
}

}  // namespace kvmlet::test
