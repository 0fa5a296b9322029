#include "devices/virtio/active_state.hpp"

#include <algorithm>
#include <cstring>

namespace kvmlet::virtio {

ActiveState::ActiveState(Activation activation) noexcept
    : memory_(&activation.memory),
      queues_(std::move(activation.queues)),
      features_(activation.features),
      interrupt_(&activation.interrupt),
      host_(&activation.host) {}

void ActiveState::signal(std::size_t queue) noexcept {
    SplitQueue& q = queues_[queue];
    if (q.broken()) {
        if (!std::exchange(reset_requested_, true)) interrupt_->needs_reset();
        return;
    }
    if (q.needs_interrupt()) interrupt_->used_buffers(queue);
}

std::vector<QueueIndices> ActiveState::indices() const {
    std::vector<QueueIndices> out;
    out.reserve(queues_.size());
    for (auto const& q : queues_) out.push_back(q.indices());
    return out;
}

void read_config_space(std::span<std::byte const> space, std::uint64_t offset,
                       std::span<std::byte> data) noexcept {
    std::fill(data.begin(), data.end(), std::byte{0});
    if (offset >= space.size()) return;
    std::size_t const n = std::min<std::size_t>(data.size(), space.size() - static_cast<std::size_t>(offset));
    std::memcpy(data.data(), space.data() + offset, n);
}

}  // namespace kvmlet::virtio
