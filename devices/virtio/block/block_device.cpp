#include "devices/virtio/block/block_device.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace kvmlet::virtio {

namespace {

blk::Config make_config(Disk const& disk) {
    blk::Config c{};
    c.capacity = disk.size() >> blk::sector_shift;
    c.size_max = BlockDevice::size_max;
    c.seg_max = BlockDevice::seg_max;
    c.blk_size = disk.block_size();
    c.num_queues = 1;
    auto const block_sectors = static_cast<std::uint32_t>(disk.block_size() / blk::sector_size);
    c.max_discard_sectors = BlockDevice::max_range_sectors;
    c.max_discard_seg = BlockDevice::max_range_segments;
    c.discard_sector_alignment = block_sectors;
    c.max_write_zeroes_sectors = BlockDevice::max_range_sectors;
    c.max_write_zeroes_seg = BlockDevice::max_range_segments;
    c.write_zeroes_may_unmap = 1;
    return c;
}

// What a request costs the bandwidth bucket: the bytes of its buffers without the header and the
// status byte (the data of a read or write; GET_ID's and discard's few bytes), from the lengths
// alone, before any of guest memory is read.
std::uint64_t request_bytes(DescriptorChain const& chain) {
    std::uint64_t total = 0;
    for (auto const& d : chain.descriptors) total += d.len;
    std::uint64_t const framing = sizeof(blk::RequestHeader) + 1;
    return total > framing ? total - framing : 0;
}

}  // namespace

BlockDevice::BlockDevice(Disk disk, RateLimiterConfig const& limits, QueueThrottle::Now now)
    : disk_(std::move(disk)), config_(make_config(disk_)), throttle_(0, limits, std::move(now)) {
    iovecs_.reserve(queue_size);
}

void BlockDevice::update_rate_limiter(RateLimiterConfig const& change) noexcept {
    throttle_.update(change, active_ ? &active_->host() : nullptr);
}

bool BlockDevice::replace_disk(Disk disk) noexcept {
    if (disk.read_only() != disk_.read_only()) return false;
    disk_ = std::move(disk);
    config_ = make_config(disk_);
    if (active_) active_->interrupt().config_changed();
    return true;
}

void BlockDevice::save(StateWriter& out) const {
    out.put(config_.capacity);
    throttle_.save(out);
}

void BlockDevice::load(StateReader& in) {
    auto const capacity = in.get<std::uint64_t>();
    if (capacity != config_.capacity)
        throw in.malformed(fmt::format("disk {}: {} sectors, the snapshot's guest knows it with {}",
                                       disk_.config().path, config_.capacity, capacity));
    throttle_.load(in);
}

std::vector<QueueIndices> BlockDevice::queue_indices() const {
    if (!active_) return {};
    auto indices = active_->indices();
    if (held_) --indices[0].next_avail;  // not started: the restore takes it again
    return indices;
}

std::vector<Metric> BlockDevice::metrics() const {
    auto const& c = counters_;
    return {{"read_bytes", c.bytes_read.value()},
            {"write_bytes", c.bytes_written.value()},
            {"read_count", c.reads.value()},
            {"write_count", c.writes.value()},
            {"flush_count", c.flushes.value()},
            {"queue_event_count", c.requests.value()},
            {"execute_fails", c.io_errors.value()},
            {"invalid_reqs_count", c.unsupported.value() + c.no_status.value()},
            {"rate_limiter_throttled_events", throttle_.throttled()}};
}

std::uint64_t BlockDevice::features() const noexcept {
    std::uint64_t f = bit(blk::feature::size_max) | bit(blk::feature::seg_max) | bit(blk::feature::blk_size) |
                      bit(blk::feature::flush) | bit(feature::ring_indirect_desc) |
                      bit(feature::ring_event_idx);
    if (disk_.read_only()) return f | bit(blk::feature::ro);
    return f | bit(blk::feature::discard) | bit(blk::feature::write_zeroes);
}

void BlockDevice::read_config(std::uint64_t offset, std::span<std::byte> data) const noexcept {
    read_config_space(std::as_bytes(std::span{&config_, 1}), offset, data);
}

bool BlockDevice::activate(Activation activation) noexcept {
    if (activation.queues.size() != 1) return false;
    active_.emplace(std::move(activation));
    writethrough_ = !active_->has(blk::feature::flush);
    return true;
}

void BlockDevice::reset() noexcept {
    active_.reset();
    held_.reset();
    throttle_.reset();
}

Work BlockDevice::process_queue(std::size_t queue) noexcept {
    if (queue != 0 || !active_) return Work::done;
    SplitQueue& q = active_->queue(0);
    // Bound per call: chains_per_call requests, and no new one once bytes_per_call were moved or
    // discarded or zeroed (a request itself is at most 4 GiB, the queue's limit on a chain, or
    // max_range_segments ranges of max_range_sectors).
    Work work = Work::more;
    std::uint64_t moved = 0;
    for (std::uint32_t n = 0; n < chains_per_call && moved < bytes_per_call; ++n) {
        auto chain = held_ ? std::exchange(held_, std::nullopt) : q.pop();
        if (!chain) {
            work = Work::done;
            break;
        }
        if (!throttle_.admit(request_bytes(*chain), active_->host())) {
            held_ = std::move(chain);
            work = Work::done;  // the throttle's timer serves the queue again
            break;
        }
        for (auto const& d : chain->descriptors) moved += d.len;
        q.add_used(chain->head, handle(*chain));
        moved += std::exchange(range_bytes_, 0);
    }
    active_->signal(0);
    return q.broken() ? Work::done : work;
}

// Returns the used length: the bytes written into the chain's writable buffers.
std::uint32_t BlockDevice::handle(DescriptorChain const& chain) noexcept {
    counters_.requests.add();
    auto const layout = blk::ChainLayout::of(chain);
    if (!layout.status) return no_status("no writable status byte");
    blk::RequestHeader header{};
    ChainReader reader(active_->memory(), chain);
    Outcome const outcome =
        reader.read_obj(header)
            ? execute(header, chain, layout, reader)
            : fail(blk::status::ioerr, "request header shorter than 16 bytes or outside RAM");
    if (!active_->memory().write(*layout.status, outcome.status)) return no_status("status byte outside RAM");
    count(outcome);
    return outcome.written + 1;
}

// Nowhere to report the outcome: the chain goes back with used length 0.
std::uint32_t BlockDevice::no_status(char const* what) noexcept {
    counters_.no_status.add();
    if (failure_log_.allow()) log::warn("virtio-blk {}: {}", disk_.config().path, what);
    return 0;
}

BlockDevice::Outcome BlockDevice::execute(blk::RequestHeader const& header, DescriptorChain const& chain,
                                          blk::ChainLayout const& layout, ChainReader& reader) noexcept {
    switch (header.type) {
        case blk::request_type::in:
            return read(header.sector, chain, layout);
        case blk::request_type::out:
            return write(header.sector, chain, layout);
        case blk::request_type::flush:
            return flush();
        case blk::request_type::get_id:
            return get_id(chain, layout);
        case blk::request_type::discard:
        case blk::request_type::write_zeroes:
            return ranges(header.type, reader);
        default:
            return fail(blk::status::unsupp, "unknown request type");
    }
}

bool BlockDevice::in_capacity(std::uint64_t sector, std::uint64_t sectors) const noexcept {
    return sector <= config_.capacity && sectors <= config_.capacity - sector;
}

BlockDevice::Outcome BlockDevice::read(std::uint64_t sector, DescriptorChain const& chain,
                                       blk::ChainLayout const& layout) noexcept {
    std::uint64_t const len = layout.writable - 1;  // everything writable before the status byte
    if (len % blk::sector_size != 0 || len > max_transfer)
        return fail(blk::status::ioerr, "read length is not whole sectors, or too long");
    if (!in_capacity(sector, len >> blk::sector_shift))
        return fail(blk::status::ioerr, "read past the end of the disk");
    iovecs_.clear();
    if (view_buffers(active_->memory(), chain, Direction::writable, 0, len, iovecs_) != len)
        return fail(blk::status::ioerr, "read buffer outside RAM");
    if (auto r = disk_.read(sector << blk::sector_shift, iovecs_); !r)
        return fail(blk::status::ioerr, r.error().c_str());
    counters_.reads.add();
    counters_.bytes_read.add(len);
    return {blk::status::ok, static_cast<std::uint32_t>(len)};
}

BlockDevice::Outcome BlockDevice::write(std::uint64_t sector, DescriptorChain const& chain,
                                        blk::ChainLayout const& layout) noexcept {
    if (disk_.read_only()) return read_only_write();  // §5.2.6.2: IOERR, and no data written
    if (layout.readable < sizeof(blk::RequestHeader)) return fail(blk::status::ioerr, "write without data");
    std::uint64_t const len = layout.readable - sizeof(blk::RequestHeader);
    if (len % blk::sector_size != 0 || len > max_transfer)
        return fail(blk::status::ioerr, "write length is not whole sectors, or too long");
    if (!in_capacity(sector, len >> blk::sector_shift))
        return fail(blk::status::ioerr, "write past the end of the disk");
    iovecs_.clear();
    if (view_buffers(active_->memory(), chain, Direction::readable, sizeof(blk::RequestHeader), len,
                     iovecs_) != len)
        return fail(blk::status::ioerr, "write buffer outside RAM");
    auto outcome = after_write(disk_.write(sector << blk::sector_shift, iovecs_));
    if (outcome.status == blk::status::ok) {
        counters_.writes.add();
        counters_.bytes_written.add(len);
    }
    return outcome;
}

// A write succeeded or not; without a negotiated FLUSH it is only complete once stable.
BlockDevice::Outcome BlockDevice::after_write(Result<void> const& result) noexcept {
    if (!result) return fail(blk::status::ioerr, result.error().c_str());
    if (writethrough_) {
        if (auto r = disk_.flush(); !r) return fail(blk::status::ioerr, r.error().c_str());
    }
    return {};
}

BlockDevice::Outcome BlockDevice::flush() noexcept {
    if (auto r = disk_.flush(); !r) return fail(blk::status::ioerr, r.error().c_str());
    counters_.flushes.add();
    return {};
}

BlockDevice::Outcome BlockDevice::get_id(DescriptorChain const& chain,
                                         blk::ChainLayout const& layout) noexcept {
    std::array<std::byte, blk::id_bytes> id{};  // NUL-padded; no terminator when all 20 bytes are used
    auto const& text = disk_.config().id;
    std::memcpy(id.data(), text.data(), std::min(text.size(), id.size()));
    std::size_t const n = static_cast<std::size_t>(std::min<std::uint64_t>(id.size(), layout.writable - 1));
    ChainWriter writer(active_->memory(), chain);
    if (!writer.write(std::span{id}.first(n))) return fail(blk::status::ioerr, "GET_ID buffer outside RAM");
    return {blk::status::ok, writer.written()};
}

BlockDevice::Outcome BlockDevice::ranges(std::uint32_t type, ChainReader& reader) noexcept {
    std::uint32_t const feature_bit =
        type == blk::request_type::discard ? blk::feature::discard : blk::feature::write_zeroes;
    if (!active_->has(feature_bit))
        return fail(blk::status::unsupp, "discard or write zeroes not negotiated");
    if (disk_.read_only()) return read_only_write();
    std::uint64_t const bytes = reader.remaining();
    std::uint64_t const count = bytes / sizeof(blk::DiscardSegment);
    if (bytes % sizeof(blk::DiscardSegment) != 0 || count == 0 || count > max_range_segments)
        return fail(blk::status::ioerr, "discard or write zeroes with a bad segment count");
    // Bound: count <= max_range_segments.
    for (std::uint64_t i = 0; i < count; ++i) {
        blk::DiscardSegment segment{};
        if (!reader.read_obj(segment))
            return fail(blk::status::ioerr, "discard or write zeroes segment outside RAM");
        if (auto outcome = range(type, segment); outcome.status != blk::status::ok) return outcome;
    }
    return {};
}

BlockDevice::Outcome BlockDevice::range(std::uint32_t type, blk::DiscardSegment const& segment) noexcept {
    bool const unmap = (segment.flags & blk::segment_flag_unmap) != 0;
    // §5.2.6.2: UNSUPP for unknown flags, and for unmap on a discard.
    if ((segment.flags & ~blk::segment_flag_unmap) != 0 || (unmap && type == blk::request_type::discard))
        return fail(blk::status::unsupp, "discard or write zeroes with unsupported flags");
    if (segment.num_sectors > max_range_sectors)
        return fail(blk::status::ioerr, "range longer than the limit");
    if (!in_capacity(segment.sector, segment.num_sectors))
        return fail(blk::status::ioerr, "range past the end of the disk");
    std::uint64_t const offset = segment.sector << blk::sector_shift;
    std::uint64_t const len = std::uint64_t{segment.num_sectors} << blk::sector_shift;
    range_bytes_ += len;  // zeroing by hand writes them: they count against the call's bound
    auto result = type == blk::request_type::discard ? disk_.discard(offset, len)
                                                     : disk_.write_zeroes(offset, len, unmap);
    return after_write(result);
}

BlockDevice::Outcome BlockDevice::read_only_write() noexcept {
    if (!std::exchange(warned_read_only_, true))
        log::warn(
            "virtio-blk {}: the guest tried to write to a read-only disk (failed with IOERR; "
            "logged once)",
            disk_.config().path);
    return {blk::status::ioerr, 0};
}

BlockDevice::Outcome BlockDevice::fail(std::uint8_t status, char const* what) noexcept {
    if (failure_log_.allow()) log::warn("virtio-blk {}: {}", disk_.config().path, what);
    return {status, 0};
}

void BlockDevice::count(Outcome const& outcome) noexcept {
    if (outcome.status == blk::status::ioerr) counters_.io_errors.add();
    if (outcome.status == blk::status::unsupp) counters_.unsupported.add();
}

}  // namespace kvmlet::virtio
