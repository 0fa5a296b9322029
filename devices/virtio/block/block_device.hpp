#pragma once
// virtio-blk (virtio 1.2 §5.2) over a Disk: one request queue; reads, writes, flushes, GET_ID,
// discard and write zeroes. I/O is synchronous (preadv/pwritev straight into guest RAM): the
// machine runs process_queue on the disk's own worker thread, never on a vCPU thread.
//
// A request that is malformed, points outside RAM, runs past the end of the disk or writes to a
// read-only disk fails alone (status IOERR or UNSUPP, or used length 0 when there is nowhere to
// put a status); the next request is served as usual. Only a broken queue stops the device.
//
// Rate limit (optional, Firecracker's drive rate_limiter): each request costs one op and the
// bytes of its buffers (header and status byte left out); a request the limiter refuses is kept,
// popped but not started, and the queue waits for the throttle's timer (queue_throttle.hpp),
// which the event loop fires and which wakes the disk's worker through the queue's notification.
#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

#include "devices/virtio/active_state.hpp"
#include "devices/virtio/block/block_spec.hpp"
#include "devices/virtio/block/disk.hpp"
#include "devices/virtio/block/request.hpp"
#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/counter.hpp"
#include "devices/virtio/queue_throttle.hpp"
#include "devices/virtio/virtio_device.hpp"
#include "vmm/base/log.hpp"

namespace kvmlet::virtio {

// Statistics, written by the device's thread and read by any (metrics, tests).
struct BlockCounters {
    using Counter = virtio::Counter;

    Counter requests;  // chains handled, whatever their outcome
    Counter reads;     // successful IN
    Counter writes;    // successful OUT
    Counter flushes;
    Counter bytes_read;
    Counter bytes_written;
    Counter io_errors;    // status IOERR
    Counter unsupported;  // status UNSUPP
    Counter no_status;    // returned with used length 0: no writable status byte, or outside RAM
};

class BlockDevice final : public Device {
public:
    static constexpr std::uint16_t queue_size = 256;
    // §5.2.4 limits the device offers. seg_max leaves room for the header and status in a chain.
    static constexpr std::uint32_t seg_max = queue_size - 2;
    static constexpr std::uint32_t size_max = 1024 * 1024;
    static constexpr std::uint64_t max_transfer = std::uint64_t{seg_max} * size_max;
    static constexpr std::uint32_t max_range_sectors = 1u << 21;  // 1 GiB per discard/zeroes range
    static constexpr std::uint32_t max_range_segments = 8;
    // Per call of process_queue (then `more`, and the worker serves its stop request first).
    static constexpr std::uint32_t chains_per_call = queue_size;
    static constexpr std::uint64_t bytes_per_call = 64ull << 20;

    explicit BlockDevice(Disk disk, RateLimiterConfig const& limits = {}, QueueThrottle::Now now = {});
    BlockDevice(BlockDevice const&) = delete;
    BlockDevice& operator=(BlockDevice const&) = delete;

    DeviceType type() const noexcept override { return DeviceType::block; }
    std::uint64_t features() const noexcept override;
    std::span<std::uint16_t const> queue_max_sizes() const noexcept override { return max_sizes_; }
    void read_config(std::uint64_t offset, std::span<std::byte> data) const noexcept override;
    bool activate(Activation activation) noexcept override;
    Work process_queue(std::size_t queue) noexcept override;
    void reset() noexcept override;
    bool blocking() const noexcept override { return true; }  // file I/O: a worker thread of its own

    Disk const& disk() const noexcept { return disk_; }
    // The drive gets a new backing file (Firecracker's PATCH /drives with a path_on_host, which
    // firecracker-containerd and Kata use to swap placeholder drives): requests from now on go to
    // `disk`, the capacity is the new one, and an active driver is told its configuration changed
    // (§2.5.2; Linux then reads the new capacity). Its read-only setting must be the old one: the
    // features were negotiated. Call with both transport mutexes held (the configuration space
    // changes). Returns false, changing nothing, when the read-only setting differs.
    bool replace_disk(Disk disk) noexcept;
    BlockCounters const& counters() const noexcept { return counters_; }
    std::vector<Metric> metrics() const override;
    // Firecracker's PATCH /drives rate_limiter (RateLimiterConfig's semantics); a request that
    // waits is tried again at once under the new limits. Call with the device mutex held.
    void update_rate_limiter(RateLimiterConfig const& change) noexcept;
    RateLimiterConfig rate_limiter() const noexcept { return throttle_.config(); }
    std::uint64_t throttled() const noexcept { return throttle_.throttled(); }

    // Snapshots: every request is finished under the device lock, so none is in flight when
    // the device is saved, except one held back by the rate limiter (given back). The section
    // holds the capacity the guest knows, which the disk must still have at a restore, and the
    // rate limiter's buckets.
    bool saveable() const noexcept override { return true; }
    void save(StateWriter& out) const override;
    void load(StateReader& in) override;
    std::vector<QueueIndices> queue_indices() const override;

private:
    struct Outcome {
        std::uint8_t status = blk::status::ok;
        std::uint32_t written = 0;  // data bytes put in writable buffers, the status byte not included
    };

    std::uint32_t handle(DescriptorChain const& chain) noexcept;
    std::uint32_t no_status(char const* what) noexcept;
    Outcome execute(blk::RequestHeader const& header, DescriptorChain const& chain,
                    blk::ChainLayout const& layout, ChainReader& reader) noexcept;
    Outcome read(std::uint64_t sector, DescriptorChain const& chain, blk::ChainLayout const& layout) noexcept;
    Outcome write(std::uint64_t sector, DescriptorChain const& chain,
                  blk::ChainLayout const& layout) noexcept;
    Outcome flush() noexcept;
    Outcome get_id(DescriptorChain const& chain, blk::ChainLayout const& layout) noexcept;
    Outcome ranges(std::uint32_t type, ChainReader& reader) noexcept;
    Outcome range(std::uint32_t type, blk::DiscardSegment const& segment) noexcept;
    bool in_capacity(std::uint64_t sector, std::uint64_t sectors) const noexcept;
    Outcome after_write(Result<void> const& result) noexcept;
    Outcome fail(std::uint8_t status, char const* what) noexcept;
    Outcome read_only_write() noexcept;
    void count(Outcome const& outcome) noexcept;

    Disk disk_;
    blk::Config config_{};
    std::array<std::uint16_t, 1> max_sizes_{queue_size};
    std::vector<iovec> iovecs_;  // scratch for one request; reserved once

    std::optional<ActiveState> active_;
    QueueThrottle throttle_;
    std::optional<DescriptorChain> held_;  // popped, refused by the rate limiter, not started
    std::uint64_t range_bytes_ = 0;        // discarded or zeroed by the request being handled
    bool writethrough_ = false;  // FLUSH offered but not negotiated: every write must be stable (§5.2.6.2)
    bool warned_read_only_ = false;

    BlockCounters counters_;
    log::RateLimit failure_log_{10, std::chrono::seconds(5)};
};

}  // namespace kvmlet::virtio
