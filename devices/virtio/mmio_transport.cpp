#include "devices/virtio/mmio_transport.hpp"

#include <cstring>

#include "devices/virtio/mmio_spec.hpp"
#include "vmm/base/log.hpp"

namespace kvmlet::virtio {
namespace {

namespace reg = mmio::reg;
using mmio::interrupt_config_change;
using mmio::interrupt_used_buffer;
using mmio::magic;
constexpr std::uint32_t mmio_version = mmio::version_modern;
constexpr std::uint32_t vendor = 0x4c4d'564b;  // "KVML"
log::RateLimit bad_access_log{10, std::chrono::seconds(5)};

void set_half(GuestAddress& address, bool high, std::uint32_t value) {
    std::uint64_t v = address.value;
    v = high ? (v & 0xffff'ffffull) | (std::uint64_t{value} << 32) : (v & ~0xffff'ffffull) | value;
    address = GuestAddress{v};
}

}  // namespace

MmioTransport::MmioTransport(GuestMemory const& memory, std::shared_ptr<Device> device, IrqLine& irq)
    : Transport(memory, std::move(device), "virtio-mmio"), irq_(irq) {}

void MmioTransport::read(IoAccess const& access, std::span<std::byte> data) noexcept {
    std::memset(data.data(), 0, data.size());
    if (access.offset >= reg::config) {
        std::lock_guard lock(mutex_);
        device().read_config(access.offset - reg::config, data);
        return;
    }
    // §4.2.2.2: registers below the configuration space are read as aligned 32-bit words.
    if (data.size() != 4 || access.offset % 4 != 0) {
        if (bad_access_log.allow())
            log::warn("virtio-mmio: {}-byte read at {:#x} ignored", data.size(), access.address);
        return;
    }
    std::uint32_t value = access.offset == reg::interrupt_status ? interrupt_status_.load() : [&] {
        std::lock_guard lock(mutex_);
        return read_register(access.offset);
    }();
    std::memcpy(data.data(), &value, sizeof value);
}

std::uint32_t MmioTransport::read_register(std::uint64_t offset) noexcept {
    QueueConfig const* queue = queue_config(queue_sel_);
    switch (offset) {
        case reg::magic_value:
            return magic;
        case reg::version:
            return mmio_version;
        case reg::device_id:
            return static_cast<std::uint32_t>(device().type());
        case reg::vendor_id:
            return vendor;
        case reg::device_features:
            return device_features_word(device_features_sel_);
        case reg::queue_num_max:
            return queue ? device().queue_max_sizes()[queue_sel_] : 0;
        case reg::queue_ready:
            return queue && queue->ready ? 1 : 0;
        case reg::status:
            return status_locked();
        case reg::shm_len_low:
        case reg::shm_len_high:
            return 0xffff'ffff;  // §4.2.2: no shared memory region
        case reg::config_generation:
            return config_generation_;
        default:
            return 0;
    }
}

void MmioTransport::write(IoAccess const& access, std::span<std::byte const> data) noexcept {
    if (access.offset >= reg::config) {
        std::lock_guard lock(mutex_);
        device().write_config(access.offset - reg::config, data);
        return;
    }
    if (data.size() != 4 || access.offset % 4 != 0) {
        if (bad_access_log.allow())
            log::warn("virtio-mmio: {}-byte write at {:#x} ignored", data.size(), access.address);
        return;
    }
    std::uint32_t value;
    std::memcpy(&value, data.data(), sizeof value);
    if (access.offset == reg::queue_notify) return dispatch_notify(value);
    if (access.offset == reg::interrupt_ack) {
        interrupt_status_.fetch_and(~value);
        return;
    }
    {
        std::lock_guard lock(mutex_);
        write_register(access.offset, value);
    }
    after_register_write();
}

void MmioTransport::write_register(std::uint64_t offset, std::uint32_t value) noexcept {
    switch (offset) {
        case reg::device_features_sel:
            device_features_sel_ = value;
            return;
        case reg::driver_features_sel:
            driver_features_sel_ = value;
            return;
        case reg::driver_features:
            write_driver_features_word(driver_features_sel_, value);
            return;
        case reg::queue_sel:
            queue_sel_ = value;
            return;
        case reg::status:
            write_status(value);
            return;
        default:
            write_queue_register(offset, value);
            return;
    }
}

void MmioTransport::write_queue_register(std::uint64_t offset, std::uint32_t value) noexcept {
    // §4.2.3.2: queues are configured before DRIVER_OK and while not ready.
    QueueConfig* q = configurable_queue(queue_sel_);
    if (!q || (q->ready && offset != reg::queue_ready)) return;
    switch (offset) {
        case reg::queue_num:
            q->size = static_cast<std::uint16_t>(value <= 0xffff ? value : 0);
            return;
        case reg::queue_ready:
            q->ready = value == 1;
            return;
        case reg::queue_desc_low:
        case reg::queue_desc_high:
            set_half(q->desc, offset == reg::queue_desc_high, value);
            return;
        case reg::queue_driver_low:
        case reg::queue_driver_high:
            set_half(q->avail, offset == reg::queue_driver_high, value);
            return;
        case reg::queue_device_low:
        case reg::queue_device_high:
            set_half(q->used, offset == reg::queue_device_high, value);
            return;
        default:
            if (bad_access_log.allow())
                log::warn("virtio-mmio: write to read-only or unknown register {:#x}", offset);
            return;
    }
}

void MmioTransport::reset_transport() noexcept {
    device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
    interrupt_status_.store(0);
}

void MmioTransport::used_buffers(std::size_t) noexcept {
    interrupt_status_.fetch_or(interrupt_used_buffer);
    irq_.trigger();
}

void MmioTransport::config_changed() noexcept {
    ++config_generation_;
    interrupt_status_.fetch_or(interrupt_config_change);
    irq_.trigger();
}

}  // namespace kvmlet::virtio

namespace kvmlet::virtio {

void MmioTransport::save(StateWriter& out) const {
    std::lock_guard registers(mutex_);
    std::lock_guard device_lock(device_mutex_);
    save_shared(out);
    out.put(device_features_sel_);
    out.put(driver_features_sel_);
    out.put(queue_sel_);
    out.put(interrupt_status_.load());
    out.put(config_generation_.load());
    device().save(out);
}

void MmioTransport::load(StateReader& in) {
    {
        std::lock_guard registers(mutex_);
        load_shared(in);
        device_features_sel_ = in.get<std::uint32_t>();
        driver_features_sel_ = in.get<std::uint32_t>();
        queue_sel_ = in.get<std::uint32_t>();
        auto const interrupts = in.get<std::uint32_t>();
        if (interrupts & ~(interrupt_used_buffer | interrupt_config_change))
            throw in.malformed(fmt::format("interrupt status {:#x} has unknown bits", interrupts));
        interrupt_status_.store(interrupts);
        config_generation_.store(in.get<std::uint32_t>());
        std::lock_guard device_lock(device_mutex_);
        device().load(in);
        in.finish();
    }
    after_register_write();
}

}  // namespace kvmlet::virtio
