#include "devices/virtio/transport.hpp"

#include "vmm/base/log.hpp"

namespace kvmlet::virtio {
namespace {

// Features the transport (not the device) brings: the modern interface only.
constexpr std::uint64_t transport_features = bit(feature::version_1);

log::RateLimit status_log{10, std::chrono::seconds(5)};
// A guest looping reset, bad queue, DRIVER_OK would otherwise write a line per loop (~15 exits).
log::RateLimit activation_log{3, std::chrono::seconds(60)};

}  // namespace

Transport::Transport(GuestMemory const& memory, std::shared_ptr<Device> device, char const* name)
    : name_(name),
      memory_(memory),
      device_(std::move(device)),
      notify_handler_([this](std::uint32_t queue) { notify(queue); }),
      queues_(device_->queue_max_sizes().size()) {}

std::uint32_t Transport::status() const noexcept {
    return status_.load();
}

bool Transport::active() const noexcept {
    std::lock_guard lock(mutex_);
    return active_;
}

Work Transport::notify(std::uint32_t queue) noexcept {
    std::lock_guard lock(device_mutex_);
    if (!active_ || queue >= queues_.size()) return Work::done;
    return device_->process_queue(queue);
}

void Transport::after_register_write() noexcept {
    if (!kick_queues_.exchange(false)) return;
    for (std::uint32_t q = 0; q < queues_.size(); ++q) dispatch_notify(q);
}

void Transport::dispatch_notify(std::uint32_t queue) noexcept {
    if (queue < queues_.size()) notify_handler_(queue);
}

std::uint64_t Transport::offered_features() const noexcept {
    return device_->features() | transport_features;
}

std::uint32_t Transport::device_features_word(std::uint32_t select) const noexcept {
    return select < 2 ? static_cast<std::uint32_t>(offered_features() >> (32 * select)) : 0;
}

std::uint32_t Transport::driver_features_word(std::uint32_t select) const noexcept {
    return select < 2 ? static_cast<std::uint32_t>(driver_features_ >> (32 * select)) : 0;
}

void Transport::write_driver_features_word(std::uint32_t select, std::uint32_t value) noexcept {
    if (status_ & status::features_ok || select >= 2) return;
    std::uint64_t const shift = 32 * select;
    driver_features_ = (driver_features_ & ~(0xffff'ffffull << shift)) | (std::uint64_t{value} << shift);
}

QueueConfig* Transport::configurable_queue(std::uint32_t index) noexcept {
    if (index >= queues_.size() || status_ & status::driver_ok) return nullptr;
    return &queues_[index];
}

QueueConfig const* Transport::queue_config(std::uint32_t index) const noexcept {
    return index < queues_.size() ? &queues_[index] : nullptr;
}

void Transport::write_status(std::uint32_t value) noexcept {
    if (value == 0) return reset();
    // §2.1.1: the driver only adds bits; anything else is a confused driver.
    std::uint32_t const current = status_.load();
    if ((value & current) != current) {
        if (status_log.allow()) log::warn("{}: status {:#x} clears bits of {:#x}", name_, value, current);
        return;
    }
    std::uint32_t added = value & ~current;
    if (added & status::features_ok && !features_acceptable()) added &= ~status::features_ok;
    status_.fetch_or(added);
    if (!(added & status::driver_ok) || active_) return;
    // §3.1.1: DRIVER_OK without FEATURES_OK is a driver error; say so rather than sit silent.
    if (status_ & status::features_ok)
        activate();
    else
        needs_reset();
}

bool Transport::features_acceptable() const noexcept {
    // §6.1: a driver that does not accept VERSION_1 is legacy, which kvmlet does not speak.
    return (driver_features_ & ~offered_features()) == 0 &&
           (driver_features_ & transport_features) == transport_features;
}

void Transport::activate() noexcept {
    bool event_idx = driver_features_ & bit(feature::ring_event_idx);
    bool indirect = driver_features_ & bit(feature::ring_indirect_desc);
    std::vector<SplitQueue> queues;
    auto max_sizes = device_->queue_max_sizes();
    for (std::size_t i = 0; i < queues_.size(); ++i) {
        auto queue = queues_[i].ready
                         ? SplitQueue::activate(memory_, queues_[i], max_sizes[i], event_idx, indirect)
                         : Result<SplitQueue>(unexpected("not ready"));
        if (!queue) {
            if (activation_log.allow())
                log::warn("{}: device type {} queue {}: {}", name_,
                          static_cast<std::uint32_t>(device_->type()), i, queue.error());
            return needs_reset();
        }
        queues.push_back(std::move(queue).value());
    }
    std::unique_lock device_lock(device_mutex_);
    if (!device_->activate(Activation{memory_, std::move(queues), driver_features_, *this, *host_})) {
        device_lock.unlock();
        return needs_reset();
    }
    active_ = true;
    kick_queues_.store(true);
}

void Transport::reset() noexcept {
    {
        std::lock_guard device_lock(device_mutex_);  // waits for a call in progress (a disk's I/O)
        if (active_) device_->reset();
        active_ = false;
    }
    status_.store(0);
    driver_features_ = 0;
    for (auto& q : queues_) q = QueueConfig{};
    reset_transport();
}

void Transport::DetachedHost::watch(int, Readiness, Callback) noexcept {
    log::warn("{}: the device asked for an fd watch, but no device host is attached", transport_.name_);
}

void Transport::DetachedHost::after(std::chrono::nanoseconds, Callback) noexcept {
    log::warn("{}: the device asked for a timer, but no device host is attached", transport_.name_);
}

void Transport::DetachedHost::post(Callback) noexcept {
    log::warn("{}: the device posted work, but no device host is attached", transport_.name_);
}

void Transport::DetachedHost::kick(std::size_t) noexcept {
    log::warn("{}: the device asked for a queue to be served, but no device host is attached",
              transport_.name_);
}

void Transport::needs_reset() noexcept {
    status_.fetch_or(status::device_needs_reset);
    config_changed();
}

}  // namespace kvmlet::virtio
