#pragma once
// Shared by the virtio-blk tests: temporary image files, a recording Interrupt, and a BlockDevice
// activated on a FakeDriver queue in real guest memory.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "devices/virtio/block/block_device.hpp"
#include "tests/unit/support/fake_device_host.hpp"
#include "tests/unit/support/fake_driver.hpp"
#include "tests/unit/support/guest_memory_fixtures.hpp"

namespace kvmlet::test {

// An image file of `size` bytes in $TMPDIR (or /tmp), byte i holding pattern_byte(i); removed
// at the end of the test.
inline std::uint8_t pattern_byte(std::uint64_t i) {
    return static_cast<std::uint8_t>(i * 7 + i / 4096);
}

class TempImage {
public:
    explicit TempImage(std::uint64_t size) {
        char const* dir = std::getenv("TMPDIR");
        path_ = std::string(dir && *dir ? dir : "/tmp") + "/kvmlet-blk-test.XXXXXX";
        int fd = ::mkstemp(path_.data());
        REQUIRE(fd >= 0);
        std::vector<std::uint8_t> bytes(size);
        for (std::uint64_t i = 0; i < size; ++i) bytes[i] = pattern_byte(i);
        REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
        ::close(fd);
    }
    TempImage(TempImage const&) = delete;
    TempImage& operator=(TempImage const&) = delete;
    ~TempImage() { ::unlink(path_.c_str()); }

    std::string const& path() const { return path_; }
    // Reads the file through a file descriptor of its own, not the disk's.
    std::vector<std::uint8_t> read(std::uint64_t offset, std::size_t len) const {
        std::vector<std::uint8_t> out(len);
        int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        REQUIRE(fd >= 0);
        auto n = ::pread(fd, out.data(), len, static_cast<off_t>(offset));
        ::close(fd);
        REQUIRE(n == static_cast<ssize_t>(len));
        return out;
    }
    std::vector<std::uint8_t> expected(std::uint64_t offset, std::size_t len) const {
        std::vector<std::uint8_t> out(len);
        for (std::size_t i = 0; i < len; ++i) out[i] = pattern_byte(offset + i);
        return out;
    }

private:
    std::string path_;
};

// Page-cache state of a file range (cachestat(2), Linux 6.5+): nullopt where the kernel lacks it.
struct CacheStat {
    std::uint64_t cache, dirty, writeback, evicted, recently_evicted;
};
inline std::optional<CacheStat> cache_stat(std::string const& path) {
    constexpr long sys_cachestat = 451;  // x86_64
    struct {
        std::uint64_t off, len;
    } range{0, 0};  // len 0: to the end of the file
    CacheStat stat{};
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    long rc = ::syscall(sys_cachestat, fd, &range, &stat, 0);
    ::close(fd);
    if (rc != 0) return std::nullopt;
    return stat;
}

struct RecordingInterrupt final : virtio::Interrupt {
    void used_buffers(std::size_t queue) noexcept override {
        ++used;
        last_queue = queue;
    }
    void config_changed() noexcept override { ++config; }
    void needs_reset() noexcept override { ++resets; }
    int used = 0;
    int config = 0;
    int resets = 0;
    std::size_t last_queue = 99;
};

inline std::vector<std::byte> bytes_of(std::vector<std::uint8_t> const& v) {
    std::vector<std::byte> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) out[i] = std::byte{v[i]};
    return out;
}

// A BlockDevice over `config`, activated with every feature it offers except `without` on one
// queue of 256 in 8 MiB of flat RAM, driven by a FakeDriver.
struct BlockRig {
    static constexpr std::uint64_t ram_size = 8 * 1024 * 1024;

    // `limits`: the device's rate limiter, on the rig's clock (`now`, moved by the test).
    explicit BlockRig(DiskConfig config, std::uint64_t without = 0,
                      virtio::RateLimiterConfig const& limits = {})
        : device(Disk(std::move(config)), limits, [this] { return now; }) {
        std::vector<virtio::SplitQueue> queues;
        auto queue = virtio::SplitQueue::activate(memory, driver.config(), 256, false, true);
        REQUIRE(queue);
        queues.push_back(std::move(queue).value());
        REQUIRE(device.activate({memory, std::move(queues), device.features() & ~without, irq, host}));
    }

    Buffer header(std::uint32_t type, std::uint64_t sector) {
        virtio::blk::RequestHeader h{type, 0, sector};
        return {driver.alloc_with(std::as_bytes(std::span{&h, 1})), sizeof h, false};
    }
    // A one-byte status buffer holding 0xff, so a status the device never wrote shows.
    Buffer status() {
        std::byte const unwritten{0xff};
        return {driver.alloc_with(std::span{&unwritten, 1}), 1, true};
    }
    Buffer data_in(std::uint32_t len) { return {driver.alloc(len), len, true}; }
    Buffer data_out(std::vector<std::uint8_t> const& bytes) {
        return {driver.alloc_with(bytes_of(bytes)), static_cast<std::uint32_t>(bytes.size()), false};
    }

    // Submits one chain, lets the device process the queue and returns what it used.
    UsedElement run(std::vector<Buffer> const& chain) {
        driver.recycle_descriptors();
        std::uint16_t head = driver.add_chain(chain);
        device.process_queue(0);
        auto used = driver.next_used();
        REQUIRE(used);
        CHECK(used->id == head);
        return *used;
    }
    std::uint8_t status_at(Buffer const& b) { return guest<std::uint8_t>(memory, b.addr + b.len - 1); }
    std::vector<std::uint8_t> guest_data(Buffer const& b) {
        auto raw = guest_bytes(memory, b.addr, b.len);
        std::vector<std::uint8_t> out(raw.size());
        for (std::size_t i = 0; i < raw.size(); ++i) out[i] = std::to_integer<std::uint8_t>(raw[i]);
        return out;
    }

    GuestMemory memory = flat_ram(ram_size);
    FakeDriver driver{memory, 256};
    RecordingInterrupt irq;
    RecordingDeviceHost host;
    virtio::RateClock::time_point now{std::chrono::seconds(1)};
    virtio::BlockDevice device;
};

inline std::vector<std::uint8_t> filled(std::size_t len, std::uint8_t first) {
    std::vector<std::uint8_t> v(len);
    for (std::size_t i = 0; i < len; ++i) v[i] = static_cast<std::uint8_t>(first + i * 3);
    return v;
}

}  // namespace kvmlet::test
