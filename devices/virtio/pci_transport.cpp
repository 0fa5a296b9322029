#include "devices/virtio/pci_transport.hpp"

#include <array>
#include <cstring>

#include "vmm/base/log.hpp"

namespace kvmlet::virtio {
namespace {

// §4.1.4.3 struct virtio_pci_common_cfg.
namespace common {
constexpr std::uint64_t device_feature_select = 0x00;
constexpr std::uint64_t device_feature = 0x04;
constexpr std::uint64_t driver_feature_select = 0x08;
constexpr std::uint64_t driver_feature = 0x0c;
constexpr std::uint64_t config_msix_vector = 0x10;
constexpr std::uint64_t num_queues = 0x12;
constexpr std::uint64_t device_status = 0x14;
constexpr std::uint64_t config_generation = 0x15;
constexpr std::uint64_t queue_select = 0x16;
constexpr std::uint64_t queue_size = 0x18;
constexpr std::uint64_t queue_msix_vector = 0x1a;
constexpr std::uint64_t queue_enable = 0x1c;
constexpr std::uint64_t queue_notify_off = 0x1e;
constexpr std::uint64_t queue_desc = 0x20;
constexpr std::uint64_t queue_driver = 0x28;
constexpr std::uint64_t queue_device = 0x30;
constexpr std::uint64_t size = 0x38;
}  // namespace common

// §4.1.4 virtio_pci_cap.cfg_type.
namespace cfg_type {
constexpr std::uint8_t common = 1;
constexpr std::uint8_t notify = 2;
constexpr std::uint8_t isr = 3;
constexpr std::uint8_t device = 4;
constexpr std::uint8_t pci = 5;
}  // namespace cfg_type
constexpr std::size_t cap_length = 16;          // struct virtio_pci_cap
constexpr std::size_t notify_cap_length = 20;   // + notify_off_multiplier
constexpr std::size_t pci_cfg_cap_length = 20;  // + pci_cfg_data
constexpr std::uint32_t pci_cfg_bar = 4, pci_cfg_offset = 8, pci_cfg_length = 12, pci_cfg_data_offset = 16;

// §4.1.2.1: vendor 0x1AF4, device 0x1040 + device type; revision 1 or more for modern-only devices.
constexpr std::uint16_t virtio_vendor = 0x1af4;
constexpr std::uint16_t virtio_modern_device_base = 0x1040;
constexpr std::uint16_t virtio_subsystem = 0x1100;
// §4.1.4.5 ISR status bits.
constexpr std::uint8_t isr_queue = 1;
constexpr std::uint8_t isr_config = 2;

log::RateLimit bad_access_log{10, std::chrono::seconds(5)};

std::uint32_t class_code(DeviceType type) {
    switch (type) {
        case DeviceType::block:
            return 0x01'80'00;  // mass storage, other
        case DeviceType::net:
            return 0x02'00'00;  // Ethernet
        case DeviceType::console:
            return 0x07'80'00;  // communication, other
        default:
            return 0xff'00'00;  // unassigned class
    }
}

pci::ConfigSpace make_config(Device const& device) {
    auto const type = static_cast<std::uint16_t>(device.type());
    pci::ConfigSpace config({.vendor = virtio_vendor,
                             .device = static_cast<std::uint16_t>(virtio_modern_device_base + type),
                             .class_code = class_code(device.type()),
                             .revision = 1,
                             .subsystem_vendor = virtio_vendor,
                             .subsystem = virtio_subsystem},
                            pci::interrupt_pin_inta);
    config.add_memory_bar(PciTransport::bar, PciTransport::bar_size, true);
    return config;
}

std::array<std::uint8_t, notify_cap_length> virtio_cap(std::uint8_t type, std::uint64_t offset,
                                                       std::uint64_t length, std::size_t cap_len) {
    std::array<std::uint8_t, notify_cap_length> cap{
        pci::capability::vendor_specific, 0, static_cast<std::uint8_t>(cap_len), type, PciTransport::bar};
    auto const offset32 = static_cast<std::uint32_t>(offset), length32 = static_cast<std::uint32_t>(length);
    std::memcpy(&cap[8], &offset32, 4);
    std::memcpy(&cap[12], &length32, 4);
    return cap;
}

// Width of the common-configuration field at `offset`, 0 when no field starts there.
std::size_t field_width(std::uint64_t offset) {
    switch (offset) {
        case common::device_status:
        case common::config_generation:
            return 1;
        case common::config_msix_vector:
        case common::num_queues:
        case common::queue_select:
        case common::queue_size:
        case common::queue_msix_vector:
        case common::queue_enable:
        case common::queue_notify_off:
            return 2;
        case common::queue_desc:
        case common::queue_driver:
        case common::queue_device:
            return 8;
        default:
            return offset < common::queue_select && offset % 4 == 0 ? 4 : 0;
    }
}

std::uint32_t value_of(std::span<std::byte const> data) {
    std::uint32_t value = 0;
    std::memcpy(&value, data.data(), std::min(data.size(), sizeof value));
    return value;
}

}  // namespace

PciTransport::PciTransport(GuestMemory const& memory, std::shared_ptr<Device> device, pci::MsiRouter& msi,
                           IrqLine& intx)
    : pci::PciDevice(make_config(*device)),
      Transport(memory, std::move(device), "virtio-pci"),
      msix_(static_cast<std::uint16_t>(queue_count() + 1), msi),
      intx_(intx),
      queue_vectors_(queue_count()) {
    for (auto& v : queue_vectors_) v.store(pci::Msix::no_vector);
    add_capabilities();
}

void PciTransport::add_capabilities() {
    auto common_cap = virtio_cap(cfg_type::common, common_offset, common::size, cap_length);
    config_.add_capability(std::span(common_cap).first(cap_length));
    auto notify_cap = virtio_cap(cfg_type::notify, notify_offset,
                                 std::uint64_t{queue_count()} * notify_off_multiplier, notify_cap_length);
    std::memcpy(&notify_cap[16], &notify_off_multiplier, 4);
    config_.add_capability(notify_cap);
    auto isr_cap = virtio_cap(cfg_type::isr, isr_offset, 1, cap_length);
    config_.add_capability(std::span(isr_cap).first(cap_length));
    auto device_cap = virtio_cap(cfg_type::device, device_config_offset, region_size, cap_length);
    config_.add_capability(std::span(device_cap).first(cap_length));
    // §4.1.4.9: the PCI configuration access window: bar, offset, length and data are the
    // driver's to write.
    auto pci_cap = virtio_cap(cfg_type::pci, 0, 0, pci_cfg_cap_length);
    std::array<std::uint8_t, pci_cfg_cap_length> writable{};
    writable[pci_cfg_bar] = 0xff;
    std::memset(&writable[pci_cfg_offset], 0xff, pci_cfg_cap_length - pci_cfg_offset);
    pci_cfg_cap_ = config_.add_capability(pci_cap, writable);
    msix_.add_capability(config_, bar, msix_table_offset, msix_pba_offset);
}

bool PciTransport::pci_cfg_data(std::uint32_t offset, std::size_t size) const noexcept {
    std::uint32_t const data = pci_cfg_cap_ + pci_cfg_data_offset;
    return offset < data + 4 && offset + size > data;
}

// §4.1.4.9.1: an access to pci_cfg_data moves `length` bytes at `offset` of BAR `bar`.
void PciTransport::pci_cfg_access(std::span<std::byte> data, bool write) noexcept {
    std::uint8_t const bar_index = static_cast<std::uint8_t>(config_.read32(pci_cfg_cap_ + pci_cfg_bar));
    std::uint32_t const offset = config_.read32(pci_cfg_cap_ + pci_cfg_offset);
    std::uint32_t const length = config_.read32(pci_cfg_cap_ + pci_cfg_length);
    if (bar_index != bar || (length != 1 && length != 2 && length != 4) || offset % length != 0) return;
    auto window = data.first(length);
    if (write)
        bar_write(bar, offset, window);
    else
        bar_read(bar, offset, window);
}

void PciTransport::config_read(std::uint32_t offset, std::span<std::byte> data) noexcept {
    // §6.2.3: Interrupt Status follows the INTx the device wants, whether or not it is disabled.
    std::uint16_t status = config_.read16(pci::reg::status) & ~pci::status::interrupt;
    if (isr_.load() != 0) status |= pci::status::interrupt;
    config_.set16(pci::reg::status, status);
    if (pci_cfg_data(offset, data.size())) {
        std::array<std::byte, 4> window{};
        pci_cfg_access(window, false);
        config_.set32(pci_cfg_cap_ + pci_cfg_data_offset, value_of(window));
    }
    config_.read(offset, data);
}

void PciTransport::config_write(std::uint32_t offset, std::span<std::byte const> data) noexcept {
    config_.write(offset, data);
    bool const disabled = config_.command() & pci::command::interrupt_disable;
    bool const was_disabled = intx_disabled_.exchange(disabled);
    msix_.config_written(config_);
    // Interrupt Disable cleared with an interrupt pending: the line goes up now (§6.2.2).
    if (was_disabled && !disabled && isr_.load() != 0 && !msix_.enabled()) intx_.trigger();
    if (pci_cfg_data(offset, data.size())) {
        std::array<std::byte, 4> window{};
        config_.read(pci_cfg_cap_ + pci_cfg_data_offset, window);
        pci_cfg_access(window, true);
    }
}

void PciTransport::bar_read(std::uint32_t index, std::uint64_t offset, std::span<std::byte> data) noexcept {
    std::memset(data.data(), 0, data.size());
    if (index != bar) return;
    if (offset >= msix_table_offset && offset < msix_pba_offset)
        return msix_.table_read(offset - msix_table_offset, data);
    if (offset >= msix_pba_offset) return msix_.pba_read(offset - msix_pba_offset, data);
    if (offset >= isr_offset && offset < isr_offset + region_size) {
        // §4.1.4.5.1: reading the ISR status clears it (and so ends the INTx assertion).
        if (offset == isr_offset) data[0] = std::byte{isr_.exchange(0)};
        return;
    }
    std::lock_guard lock(mutex_);
    if (offset < common_offset + region_size) return read_common(offset - common_offset, data);
    if (offset >= device_config_offset && offset < device_config_offset + region_size)
        device().read_config(offset - device_config_offset, data);
}

void PciTransport::bar_write(std::uint32_t index, std::uint64_t offset,
                             std::span<std::byte const> data) noexcept {
    if (index != bar) return;
    if (offset >= msix_table_offset && offset < msix_pba_offset)
        return msix_.table_write(offset - msix_table_offset, data);
    if (offset >= notify_offset && offset < notify_offset + region_size) {
        // A notification KVM's ioeventfd did not catch (another width, or no ioeventfd yet).
        return dispatch_notify(static_cast<std::uint32_t>((offset - notify_offset) / notify_off_multiplier));
    }
    {
        std::lock_guard lock(mutex_);
        if (offset < common_offset + region_size)
            write_common(offset - common_offset, data);
        else if (offset >= device_config_offset && offset < device_config_offset + region_size)
            device().write_config(offset - device_config_offset, data);
    }
    after_register_write();
}

void PciTransport::bar_moved(std::uint32_t index, std::optional<std::uint64_t> address) noexcept {
    if (index != bar || !notify_region_handler_) return;
    notify_region_handler_(address ? std::optional(*address + notify_offset) : std::nullopt);
}

// Mutex held. Any width at any offset reads the bytes of the structure.
void PciTransport::read_common(std::uint64_t offset, std::span<std::byte> data) noexcept {
    if (offset >= common::size || data.size() > common::size - offset) return;
    std::array<std::byte, common::size> c{};
    auto put = [&c](std::uint64_t at, auto value) { std::memcpy(&c[at], &value, sizeof value); };
    put(common::device_feature_select, device_feature_select_);
    put(common::device_feature, device_features_word(device_feature_select_));
    put(common::driver_feature_select, driver_feature_select_);
    put(common::driver_feature, driver_features_word(driver_feature_select_));
    put(common::config_msix_vector, config_vector_.load());
    put(common::num_queues, static_cast<std::uint16_t>(queue_count()));
    put(common::device_status, static_cast<std::uint8_t>(status_locked()));
    put(common::config_generation, config_generation_.load());
    put(common::queue_select, queue_select_);
    if (QueueConfig const* q = queue_config(queue_select_)) {
        std::uint16_t const max = device().queue_max_sizes()[queue_select_];
        put(common::queue_size, q->size ? q->size : max);
        put(common::queue_msix_vector, queue_vectors_[queue_select_].load());
        put(common::queue_enable, static_cast<std::uint16_t>(q->ready));
        put(common::queue_notify_off, queue_select_);
        put(common::queue_desc, q->desc.value);
        put(common::queue_driver, q->avail.value);
        put(common::queue_device, q->used.value);
    }
    std::memcpy(data.data(), &c[offset], data.size());
}

// Mutex held. §4.1.3.1: fields are written with their natural width; 64-bit fields may be
// written as two 32-bit halves.
void PciTransport::write_common(std::uint64_t offset, std::span<std::byte const> data) noexcept {
    std::uint64_t const field = offset == common::queue_desc + 4 || offset == common::queue_driver + 4 ||
                                        offset == common::queue_device + 4
                                    ? offset - 4
                                    : offset;
    std::size_t const width = field_width(field);
    bool const fits = data.size() == width || (width == 8 && data.size() == 4 && offset % 4 == 0);
    if (width == 0 || !fits) {
        if (bad_access_log.allow())
            log::warn("virtio-pci: {}-byte write at common {:#x} ignored", data.size(), offset);
        return;
    }
    write_common_field(offset, std::min<std::size_t>(data.size(), 4), value_of(data));
    if (data.size() == 8) write_common_field(offset + 4, 4, value_of(data.subspan(4)));
}

void PciTransport::write_common_field(std::uint64_t offset, std::size_t size, std::uint32_t value) noexcept {
    switch (offset) {
        case common::device_feature_select:
            device_feature_select_ = value;
            return;
        case common::driver_feature_select:
            driver_feature_select_ = value;
            return;
        case common::driver_feature:
            write_driver_features_word(driver_feature_select_, value);
            return;
        case common::config_msix_vector:
            config_vector_ = accepted_vector(value);
            return;
        case common::device_status:
            write_status(value);
            return;
        case common::queue_select:
            queue_select_ = static_cast<std::uint16_t>(value);
            return;
        default:
            write_queue_field(offset, size, value);
            return;
    }
}

void PciTransport::write_queue_field(std::uint64_t offset, std::size_t, std::uint32_t value) noexcept {
    if (offset == common::queue_msix_vector) {
        if (queue_select_ < queue_vectors_.size()) queue_vectors_[queue_select_] = accepted_vector(value);
        return;
    }
    // §4.1.4.3.2: queue fields are written before the queue is enabled and before DRIVER_OK.
    QueueConfig* q = configurable_queue(queue_select_);
    if (!q || q->ready) return;
    auto set_half = [&](GuestAddress& address, std::uint64_t field) {
        std::uint64_t const shift = offset == field ? 0 : 32;
        address.value = (address.value & ~(0xffff'ffffull << shift)) | (std::uint64_t{value} << shift);
    };
    switch (offset) {
        case common::queue_size:
            q->size = static_cast<std::uint16_t>(value);
            return;
        case common::queue_enable:
            if (value != 1) return;  // §4.1.4.3.2: the driver never writes 0 (no RING_RESET here)
            if (q->size == 0) q->size = device().queue_max_sizes()[queue_select_];
            q->ready = true;
            return;
        case common::queue_desc:
        case common::queue_desc + 4:
            set_half(q->desc, common::queue_desc);
            return;
        case common::queue_driver:
        case common::queue_driver + 4:
            set_half(q->avail, common::queue_driver);
            return;
        case common::queue_device:
        case common::queue_device + 4:
            set_half(q->used, common::queue_device);
            return;
        default:
            if (bad_access_log.allow())
                log::warn("virtio-pci: write to read-only common field {:#x}", offset);
            return;
    }
}

// §4.1.5.1.2: a vector the device cannot use reads back as NO_VECTOR.
std::uint16_t PciTransport::accepted_vector(std::uint32_t value) const noexcept {
    return value < msix_.vectors() ? static_cast<std::uint16_t>(value) : pci::Msix::no_vector;
}

void PciTransport::reset_transport() noexcept {
    device_feature_select_ = driver_feature_select_ = 0;
    queue_select_ = 0;
    config_vector_ = pci::Msix::no_vector;
    for (auto& v : queue_vectors_) v.store(pci::Msix::no_vector);
    isr_.store(0);
}

void PciTransport::save(StateWriter& out) const {
    std::lock_guard registers(mutex_);
    std::lock_guard device_lock(device_mutex_);
    config_.save(out);
    msix_.save(out);
    save_shared(out);
    out.put(device_feature_select_);
    out.put(driver_feature_select_);
    out.put(queue_select_);
    out.put(config_vector_.load());
    for (auto const& v : queue_vectors_) out.put(v.load());
    out.put(config_generation_.load());
    out.put(isr_.load());
    device().save(out);
}

void PciTransport::load(StateReader& in) {
    {
        std::lock_guard registers(mutex_);
        config_.load(in);
        intx_disabled_.store(config_.command() & pci::command::interrupt_disable);
        msix_.load(in);
        msix_.config_written(config_);  // Enable and Function Mask; every deliverable vector routed
        load_shared(in);
        load_registers(in);
        std::lock_guard device_lock(device_mutex_);
        device().load(in);
        in.finish();
    }
    if (intx_asserted()) intx_.trigger();  // the level the guest has not acknowledged yet
    after_register_write();
}

// Mutex held.
void PciTransport::load_registers(StateReader& in) {
    device_feature_select_ = in.get<std::uint32_t>();
    driver_feature_select_ = in.get<std::uint32_t>();
    queue_select_ = in.get<std::uint16_t>();
    auto const vector = [&] {
        auto const v = in.get<std::uint16_t>();
        if (accepted_vector(v) != v) throw in.malformed(fmt::format("MSI-X vector {} does not exist", v));
        return v;
    };
    config_vector_.store(vector());
    for (auto& v : queue_vectors_) v.store(vector());
    config_generation_.store(in.get<std::uint8_t>());
    auto const isr = in.get<std::uint8_t>();
    if (isr & ~(isr_queue | isr_config))
        throw in.malformed(fmt::format("ISR status {:#x} has unknown bits", isr));
    isr_.store(isr);
}

bool PciTransport::intx_asserted() const noexcept {
    return isr_.load() != 0 && !intx_disabled_.load() && !msix_.enabled();
}

// On the device's executor (device mutex held). MSI-X when enabled (no vector assigned: no interrupt,
// §4.1.5.1.2), else INTx.
void PciTransport::raise(std::uint16_t vector, std::uint8_t isr_bit) noexcept {
    if (msix_.trigger(vector)) return;
    isr_.fetch_or(isr_bit);
    if (!intx_disabled_.load()) intx_.trigger();
}

void PciTransport::used_buffers(std::size_t queue) noexcept {
    raise(queue < queue_vectors_.size() ? queue_vectors_[queue].load() : pci::Msix::no_vector, isr_queue);
}

void PciTransport::config_changed() noexcept {
    ++config_generation_;
    raise(config_vector_, isr_config);
}

}  // namespace kvmlet::virtio
