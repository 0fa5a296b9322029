// Fuzz target: virtio-blk request handling (devices/virtio/block/) over guest RAM the fuzzer
// wrote and a 64 KiB scratch image. Input format: fuzz_support.hpp (QueueHeader), with flag
// bits 2-4 the FLUSH, DISCARD and WRITE_ZEROES features the driver accepted, and bits 5-6 the
// disk: 0 and 3 read-write, 1 read-only, 2 read-write with cache=none (O_DIRECT, through the
// bounce buffer for misaligned requests; read-write buffered where the file system lacks it).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "devices/virtio/block/block_device.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/fuzz/temp_disk.hpp"

namespace kvmlet::fuzz {
namespace {

constexpr std::uint8_t flag_flush = 1u << 2;
constexpr std::uint8_t flag_discard = 1u << 3;
constexpr std::uint8_t flag_write_zeroes = 1u << 4;
constexpr unsigned disk_shift = 5;

// A disk asks its host for nothing: it is served by its own worker.
class IdleHost final : public virtio::DeviceHost {
public:
    void watch(int, Readiness, Callback) noexcept override { invariant_failed("virtio-blk watched an fd"); }
    void after(std::chrono::nanoseconds, Callback) noexcept override {
        invariant_failed("virtio-blk set a timer");
    }
    void post(Callback) noexcept override { invariant_failed("virtio-blk posted work"); }
    void kick(std::size_t) noexcept override { invariant_failed("virtio-blk kicked a queue"); }
};

class RecordingInterrupt final : public virtio::Interrupt {
public:
    void used_buffers(std::size_t queue) noexcept override {
        KVMLET_FUZZ_CHECK(queue == 0);
        ++used;
    }
    void config_changed() noexcept override { ++config; }
    void needs_reset() noexcept override { ++resets; }

    std::uint64_t used = 0;
    std::uint64_t config = 0;
    std::uint64_t resets = 0;
};

struct Devices {
    std::unique_ptr<virtio::BlockDevice> read_write;
    std::unique_ptr<virtio::BlockDevice> read_only;
    std::unique_ptr<virtio::BlockDevice> direct;  // null without O_DIRECT
};

Devices& devices() {
    static Devices d = [] {
        Devices out;
        out.read_write = std::make_unique<virtio::BlockDevice>(
            *temp_disk({.path = {}, .read_only = false, .id = "kvmlet-fuzz", .cache = CacheMode::writeback}));
        out.read_only = std::make_unique<virtio::BlockDevice>(
            *temp_disk({.path = {}, .read_only = true, .id = {}, .cache = CacheMode::writeback}));
        if (auto disk = temp_disk(
                {.path = {}, .read_only = false, .id = "0123456789abcdefghij", .cache = CacheMode::none}))
            out.direct = std::make_unique<virtio::BlockDevice>(std::move(*disk));
        return out;
    }();
    return d;
}

virtio::BlockDevice& pick(unsigned variant) {
    Devices& d = devices();
    switch (variant) {
        case 1:
            return *d.read_only;
        case 2:
            return d.direct ? *d.direct : *d.read_write;
        default:
            return *d.read_write;
    }
}

}  // namespace
}  // namespace kvmlet::fuzz

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    using namespace kvmlet;
    using namespace kvmlet::fuzz;
    quiet_logs();
    ByteReader in({data, size});
    auto const header = take_queue_header(in);
    take_ram_image(in);
    GuestMemory const& memory = ram();
    virtio::BlockDevice& device = pick((header.flags >> disk_shift) & 3u);

    auto queue = virtio::SplitQueue::activate(memory, header.config, device.queue_max_sizes()[0],
                                              header.event_idx, header.indirect);
    if (!queue) return 0;
    std::uint64_t acked = virtio::bit(virtio::feature::version_1);
    if (header.event_idx) acked |= virtio::bit(virtio::feature::ring_event_idx);
    if (header.indirect) acked |= virtio::bit(virtio::feature::ring_indirect_desc);
    if (header.flags & flag_flush) acked |= virtio::bit(virtio::blk::feature::flush);
    if (header.flags & flag_discard) acked |= virtio::bit(virtio::blk::feature::discard);
    if (header.flags & flag_write_zeroes) acked |= virtio::bit(virtio::blk::feature::write_zeroes);
    acked &= device.features() | virtio::bit(virtio::feature::version_1);  // as the transport checks

    RecordingInterrupt interrupt;
    IdleHost host;
    std::vector<virtio::SplitQueue> queues;
    queues.push_back(std::move(queue).value());
    KVMLET_FUZZ_CHECK(device.activate({memory, std::move(queues), acked, interrupt, host}));
    device.process_queue(1);  // no such queue: ignored
    for (int round = 0; round < max_rounds; ++round) {
        device.process_queue(0);
        if (!apply_patch(in)) break;
    }
    // A broken queue is reported once per activation, and nothing else asks for a reset.
    KVMLET_FUZZ_CHECK(interrupt.resets <= 1 && interrupt.config == 0);
    device.reset();
    device.process_queue(0);  // after reset: no queue, nothing happens
    return 0;
}
