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
    if (!active_ || frozen_ || queue >= queues_.size()) return Work::done;
    return device_->process_queue(queue);
}

std::size_t Transport::console_input(std::span<std::byte const> bytes) noexcept {
    std::lock_guard lock(device_mutex_);
    return frozen_ ? 0 : device_->console_input(bytes);
}

void Transport::freeze() noexcept {
    std::lock_guard lock(device_mutex_);
    frozen_ = true;
}

void Transport::thaw() noexcept {
    {
        std::lock_guard lock(device_mutex_);
        frozen_ = false;
    }
    for (std::uint32_t q = 0; q < queues_.size(); ++q) dispatch_notify(q);
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

// The queues as the driver configured them, validated; which one is not ready or not valid
// otherwise.
Result<std::vector<SplitQueue>> Transport::activate_queues() noexcept {
    bool event_idx = driver_features_ & bit(feature::ring_event_idx);
    bool indirect = driver_features_ & bit(feature::ring_indirect_desc);
    std::vector<SplitQueue> queues;
    auto max_sizes = device_->queue_max_sizes();
    for (std::size_t i = 0; i < queues_.size(); ++i) {
        auto queue = queues_[i].ready
                         ? SplitQueue::activate(memory_, queues_[i], max_sizes[i], event_idx, indirect)
                         : Result<SplitQueue>(unexpected("not ready"));
        if (!queue)
            return unexpected(fmt::format("device type {} queue {}: {}",
                                          static_cast<std::uint32_t>(device_->type()), i, queue.error()));
        queues.push_back(std::move(queue).value());
    }
    return queues;
}

void Transport::activate() noexcept {
    auto queues = activate_queues();
    if (!queues) {
        if (activation_log.allow()) log::warn("{}: {}", name_, queues.error());
        return needs_reset();
    }
    std::unique_lock device_lock(device_mutex_);
    if (!device_->activate(Activation{memory_, std::move(queues).value(), driver_features_, *this, *host_})) {
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

void Transport::save_shared(StateWriter& out) const {
    out.put(status_.load());
    out.put(driver_features_);
    out.put(static_cast<std::uint32_t>(queues_.size()));
    for (auto const& q : queues_) {
        out.put(q.size);
        out.put(q.desc.value);
        out.put(q.avail.value);
        out.put(q.used.value);
        out.put_bool(q.ready);
    }
    out.put_bool(active_);
    if (!active_) return;
    auto const indices = device_->queue_indices();
    for (std::size_t i = 0; i < queues_.size(); ++i) {
        QueueIndices const at = i < indices.size() ? indices[i] : QueueIndices{};
        out.put(at.next_avail);
        out.put(at.next_used);
        out.put(at.signalled_used);
    }
}

void Transport::load_shared(StateReader& in) {
    status_.store(in.get<std::uint32_t>());
    driver_features_ = in.get<std::uint64_t>();
    auto const count = in.get<std::uint32_t>();
    if (count != queues_.size())
        throw in.malformed(fmt::format("{} queues, the device has {}", count, queues_.size()));
    for (auto& q : queues_) {
        q.size = in.get<std::uint16_t>();
        q.desc = GuestAddress{in.get<std::uint64_t>()};
        q.avail = GuestAddress{in.get<std::uint64_t>()};
        q.used = GuestAddress{in.get<std::uint64_t>()};
        q.ready = in.get_bool();
    }
    bool const active = in.get_bool();
    std::vector<QueueIndices> indices(active ? queues_.size() : 0);
    for (auto& at : indices) {
        at.next_avail = in.get<std::uint16_t>();
        at.next_used = in.get<std::uint16_t>();
        at.signalled_used = in.get<std::uint16_t>();
    }
    std::uint32_t const status = status_.load();
    if (status & status::features_ok && !features_acceptable())
        throw in.malformed(fmt::format("accepted features {:#x} are not acceptable", driver_features_));
    bool const running = (status & status::driver_ok) && (status & status::features_ok);
    // A device whose driver set DRIVER_OK is active, or failed its activation and asked for a reset.
    if (running && !active && !(status & status::device_needs_reset))
        throw in.malformed("DRIVER_OK but the device is not active");
    if (active && !running) throw in.malformed("an active device without FEATURES_OK and DRIVER_OK");
    if (active) activate_restored(in, indices);
}

// As activate(), with the queues going on from `indices`; what a live activation answers with
// DEVICE_NEEDS_RESET is an error here: the saved transport had activated the device.
void Transport::activate_restored(StateReader& in, std::vector<QueueIndices> const& indices) {
    for (std::size_t i = 0; i < indices.size(); ++i)
        if (indices[i].next_avail != indices[i].next_used)
            throw in.malformed(
                fmt::format("queue {}: {} requests in flight", i,
                            static_cast<std::uint16_t>(indices[i].next_avail - indices[i].next_used)));
    auto queues = activate_queues();
    if (!queues) throw in.malformed(queues.error());
    for (std::size_t i = 0; i < queues->size(); ++i) (*queues)[i].resume_at(indices[i]);
    std::lock_guard device_lock(device_mutex_);
    if (!device_->activate(Activation{memory_, std::move(queues).value(), driver_features_, *this, *host_}))
        throw in.malformed("the device refuses its activation");
    active_ = true;
    kick_queues_.store(true);
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
