#include "devices/virtio/console/console_device.hpp"

#include <algorithm>

#include "devices/virtio/chain_io.hpp"

namespace kvmlet::virtio {
namespace {

// §5.3.4: struct virtio_console_config { le16 cols; le16 rows; le32 max_nr_ports; le32 emerg_wr; }.
// Without SIZE and MULTIPORT the fields carry no meaning; the whole space reads as zero.
// Guest output is copied out in chunks of this size, so a huge buffer needs no huge allocation.
constexpr std::size_t transmit_chunk = 4096;

}  // namespace

std::uint64_t ConsoleDevice::features() const noexcept {
    return bit(feature::ring_indirect_desc) | bit(feature::ring_event_idx);
}

void ConsoleDevice::read_config(std::uint64_t offset, std::span<std::byte> data) const noexcept {
    (void)offset;
    std::fill(data.begin(), data.end(), std::byte{0});
}

bool ConsoleDevice::activate(Activation activation) noexcept {
    active_.emplace(std::move(activation));
    return true;
}

void ConsoleDevice::reset() noexcept {
    active_.reset();
    tx_held_.reset();
    tx_held_done_ = 0;
}

void ConsoleDevice::save(StateWriter& out) const {
    out.put(tx_held_done_);  // 0 unless a chain is held, or a loaded count waits for its chain
}

// The count applies to the next transmit chain popped, which is the one given back. A count
// larger than that chain drops it (used length 0), as a chain outside RAM would be.
void ConsoleDevice::load(StateReader& in) {
    auto const done = in.get<std::uint64_t>();
    if (done != 0 && !active_) throw in.malformed("a transmit chain in progress on an inactive console");
    tx_held_.reset();
    tx_held_done_ = done;
}

std::vector<QueueIndices> ConsoleDevice::queue_indices() const {
    if (!active_) return {};
    auto indices = active_->indices();
    if (tx_held_) --indices[transmit_queue].next_avail;
    return indices;
}

Work ConsoleDevice::process_queue(std::size_t queue) noexcept {
    // New receive buffers need no action: input is offered again by the caller of enqueue_input.
    return queue == transmit_queue ? transmit() : Work::done;
}

// At most transmit_bytes_per_call bytes and chains_per_call chains; a chain cut short is held and
// continued on the next call.
Work ConsoleDevice::transmit() noexcept {
    if (!active_) return Work::done;
    SplitQueue& tx = active_->queue(transmit_queue);
    std::array<std::byte, transmit_chunk> chunk;
    std::uint64_t budget = transmit_bytes_per_call;
    Work work = Work::more;
    for (std::uint32_t chains = 0; chains < chains_per_call && budget > 0; ++chains) {
        auto chain = tx_held_ ? std::exchange(tx_held_, std::nullopt) : tx.pop();
        if (!chain) {
            work = Work::done;
            break;
        }
        std::uint64_t done = std::exchange(tx_held_done_, 0);
        ChainReader reader(active_->memory(), *chain);
        bool ok = reader.skip(done);
        while (ok && reader.remaining() > 0 && budget > 0) {
            auto n =
                static_cast<std::size_t>(std::min({reader.remaining(), budget, std::uint64_t{chunk.size()}}));
            ok = reader.read(std::span(chunk).first(n));  // false: a buffer outside RAM, drop the rest
            if (!ok) break;
            output_.write(std::span(chunk).first(n));
            bytes_out_.add(n);
            budget -= n;
            done += n;
        }
        if (ok && reader.remaining() > 0) {
            tx_held_ = std::move(chain);  // out of budget in the middle of it
            tx_held_done_ = done;
            break;
        }
        tx.add_used(chain->head, 0);
    }
    active_->signal(transmit_queue);
    return tx.broken() ? Work::done : work;
}

std::size_t ConsoleDevice::enqueue_input(std::span<std::byte const> bytes) noexcept {
    if (!active_) return 0;
    SplitQueue& rx = active_->queue(receive_queue);
    std::size_t taken = 0;
    for (std::uint32_t chains = 0; taken < bytes.size() && chains < chains_per_call; ++chains) {
        auto chain = rx.pop();
        if (!chain) break;
        ChainWriter writer(active_->memory(), *chain);
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(writer.remaining(), bytes.size() - taken));
        bool written = writer.write(bytes.subspan(taken, n));  // false: a buffer outside RAM
        if (written) taken += n;
        rx.add_used(chain->head, written ? writer.written() : 0);
    }
    bytes_in_.add(taken);
    active_->signal(receive_queue);
    return taken;
}

}  // namespace kvmlet::virtio
