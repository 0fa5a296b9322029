#include "devices/legacy/serial.hpp"

#include <chrono>

#include "vmm/base/log.hpp"

namespace kvmlet {
namespace {

// Register offsets and bits: TI PC16550D datasheet, Table II "Summary of Accessible Registers".
constexpr std::uint64_t rbr_thr_dll = 0;  // DLL while LCR.DLAB is set
constexpr std::uint64_t ier_dlm = 1;      // DLM while LCR.DLAB is set
constexpr std::uint64_t iir_fcr = 2;
constexpr std::uint64_t lcr_offset = 3;
constexpr std::uint64_t mcr_offset = 4;
constexpr std::uint64_t lsr_offset = 5;
constexpr std::uint64_t msr_offset = 6;
constexpr std::uint64_t scr_offset = 7;

constexpr std::uint8_t ier_erbfi = 0x01;  // received data available
constexpr std::uint8_t ier_etbei = 0x02;  // transmitter holding register empty
constexpr std::uint8_t ier_elsi = 0x04;   // receiver line status
constexpr std::uint8_t ier_mask = 0x0f;   // bits 4-7 are always zero

// IIR interrupt identification, highest priority first (datasheet Table IV).
constexpr std::uint8_t iir_none = 0x01;
constexpr std::uint8_t iir_line_status = 0x06;
constexpr std::uint8_t iir_rx_data = 0x04;
constexpr std::uint8_t iir_thr_empty = 0x02;
constexpr std::uint8_t iir_fifos_enabled = 0xc0;

constexpr std::uint8_t fcr_enable = 0x01;
constexpr std::uint8_t fcr_clear_rx = 0x02;  // clearing tx is a no-op: it is always empty

constexpr std::uint8_t lcr_dlab = 0x80;

constexpr std::uint8_t mcr_dtr = 0x01;
constexpr std::uint8_t mcr_rts = 0x02;
constexpr std::uint8_t mcr_out1 = 0x04;
constexpr std::uint8_t mcr_out2 = 0x08;
constexpr std::uint8_t mcr_loop = 0x10;
constexpr std::uint8_t mcr_mask = 0x1f;  // bits 5-7 are always zero

constexpr std::uint8_t lsr_dr = 0x01;
constexpr std::uint8_t lsr_oe = 0x02;
constexpr std::uint8_t lsr_thre = 0x20;
constexpr std::uint8_t lsr_temt = 0x40;

constexpr std::uint8_t msr_cts = 0x10;
constexpr std::uint8_t msr_dsr = 0x20;
constexpr std::uint8_t msr_ri = 0x40;
constexpr std::uint8_t msr_dcd = 0x80;

// Enabled interrupt sources, as a bit set, so a newly pending one can be told from an old one.
constexpr std::uint8_t source_line_status = 0x01;
constexpr std::uint8_t source_rx_data = 0x02;
constexpr std::uint8_t source_thr_empty = 0x04;

constexpr std::uint8_t all_ones = 0xff;

void note_ignored(char const* what, IoAccess const& access, std::size_t size) noexcept {
    static log::RateLimit limit(10, std::chrono::seconds(1));
    if (log::enabled(log::Level::debug) && limit.allow())
        log::debug("serial: ignored {}-byte {} at {:#x}", size, what, access.address);
}

}  // namespace

void Serial::read(IoAccess const& access, std::span<std::byte> data) noexcept {
    if (data.size() != 1 || access.offset >= port_count) {
        for (auto& b : data) b = std::byte{all_ones};
        note_ignored("read", access, data.size());
        return;
    }
    std::lock_guard lock(mutex_);
    data[0] = std::byte{read_register(access.offset)};
}

// Reads never make an interrupt source pending, so only writes and input trigger the line.
void Serial::write(IoAccess const& access, std::span<std::byte const> data) noexcept {
    if (data.size() != 1 || access.offset >= port_count) {
        note_ignored("write", access, data.size());
        return;
    }
    std::unique_lock lock(mutex_);
    if (access.offset == rbr_thr_dll && !dlab()) thre_pending_ = false;  // writing THR clears THRE
    std::uint8_t before = pending_sources();
    std::optional<std::byte> sent = write_register(access.offset, std::to_integer<std::uint8_t>(data[0]));
    if (access.offset == ier_dlm || access.offset == mcr_offset) update_batching();
    bool raise = (pending_sources() & ~before) != 0;
    std::unique_lock output_lock(output_mutex_, std::defer_lock);
    if (sent) output_lock.lock();
    lock.unlock();
    if (sent) output_.write(std::span<std::byte const>(&*sent, 1));
    if (raise) irq_.trigger();
}

std::size_t Serial::enqueue_input(std::span<std::byte const> bytes) noexcept {
    std::unique_lock lock(mutex_);
    if (loopback()) return 0;
    std::uint8_t before = pending_sources();
    std::size_t accepted = 0;
    while (accepted < bytes.size() && push_rx(std::to_integer<std::uint8_t>(bytes[accepted]))) ++accepted;
    bool raise = (pending_sources() & ~before) != 0;
    lock.unlock();
    if (raise) irq_.trigger();
    return accepted;
}

void Serial::batch_transmit(WriteBatching& batching) noexcept {
    std::lock_guard lock(mutex_);
    batching_ = &batching;
    batched_ = false;
    update_batching();
}

// Batched THR writes reach transmit() late: safe only while no THR-empty interrupt can follow a
// write (ETBEI clear) and no loopback turns a write into received data.
void Serial::update_batching() noexcept {
    if (batching_ == nullptr) return;
    bool const wanted = (ier_ & ier_etbei) == 0 && !loopback();
    if (wanted == batched_) return;
    batched_ = wanted;
    batching_->batch(wanted);
}

bool Serial::input_full() const noexcept {
    std::lock_guard lock(mutex_);
    return loopback() || rx_count_ == rx_capacity;
}

std::uint8_t Serial::read_register(std::uint64_t offset) noexcept {
    switch (offset) {
        case rbr_thr_dll:
            return dlab() ? dll_ : pop_rx();
        case ier_dlm:
            return dlab() ? dlm_ : ier_;
        case iir_fcr:
            return read_iir();
        case lcr_offset:
            return lcr_;
        case mcr_offset:
            return mcr_;
        case lsr_offset:
            return read_lsr();
        case msr_offset:
            return msr();
        case scr_offset:
            return scr_;
        default:
            return all_ones;
    }
}

std::optional<std::byte> Serial::write_register(std::uint64_t offset, std::uint8_t value) noexcept {
    switch (offset) {
        case rbr_thr_dll:
            if (!dlab()) return transmit(value);
            dll_ = value;
            break;
        case ier_dlm:
            if (dlab())
                dlm_ = value;
            else
                write_ier(value);
            break;
        case iir_fcr:
            write_fcr(value);
            break;
        case lcr_offset:
            lcr_ = value;
            break;
        case mcr_offset:
            mcr_ = value & mcr_mask;
            break;
        case scr_offset:
            scr_ = value;
            break;
        default:
            break;  // LSR and MSR are read-only
    }
    return std::nullopt;
}

// Enabling ETBEI while THR is empty (always, here) raises the THR-empty interrupt: Linux's
// serial8250_do_startup() tests for exactly this and otherwise marks the port UART_BUG_THRE.
void Serial::write_ier(std::uint8_t value) noexcept {
    std::uint8_t enabled = static_cast<std::uint8_t>(value & ~ier_ & ier_etbei);
    ier_ = value & ier_mask;
    if (enabled) thre_pending_ = true;
}

// Changing FCR.0 clears both FIFOs (datasheet, "FIFO Control Register").
void Serial::write_fcr(std::uint8_t value) noexcept {
    bool enable = (value & fcr_enable) != 0;
    if ((value & fcr_clear_rx) || enable != fifo_enabled_) {
        rx_head_ = 0;
        rx_count_ = 0;
    }
    fifo_enabled_ = enable;
}

// Sends at once, so THR is empty again and its interrupt pending as soon as this returns.
std::optional<std::byte> Serial::transmit(std::uint8_t value) noexcept {
    thre_pending_ = true;
    if (!loopback()) return std::byte{value};
    if (!push_rx(value)) overrun_ = true;  // datasheet "LSR bit 1": the new byte is lost
    return std::nullopt;
}

std::uint8_t Serial::read_iir() noexcept {
    std::uint8_t sources = pending_sources();
    std::uint8_t id = iir_none;
    if (sources & source_line_status)
        id = iir_line_status;
    else if (sources & source_rx_data)
        id = iir_rx_data;
    else if (sources & source_thr_empty) {
        id = iir_thr_empty;
        thre_pending_ = false;  // reading IIR clears THRE when it is the source reported
    }
    return static_cast<std::uint8_t>(id | (fifo_enabled_ ? iir_fifos_enabled : 0));
}

std::uint8_t Serial::read_lsr() noexcept {
    std::uint8_t value = lsr_thre | lsr_temt;
    if (rx_count_ > 0) value |= lsr_dr;
    if (overrun_) value |= lsr_oe;
    overrun_ = false;  // reading LSR clears the error bits and the line-status interrupt
    return value;
}

// In loopback the modem inputs follow the modem outputs (datasheet "MCR bit 4"); Linux's
// autoconfig sets MCR = LOOP | OUT2 | RTS and expects MSR & 0xf0 == DCD | CTS. Otherwise a
// modem is always present and ready.
std::uint8_t Serial::msr() const noexcept {
    if (!loopback()) return msr_dcd | msr_dsr | msr_cts;
    std::uint8_t value = 0;
    if (mcr_ & mcr_rts) value |= msr_cts;
    if (mcr_ & mcr_dtr) value |= msr_dsr;
    if (mcr_ & mcr_out1) value |= msr_ri;
    if (mcr_ & mcr_out2) value |= msr_dcd;
    return value;
}

std::uint8_t Serial::pending_sources() const noexcept {
    std::uint8_t sources = 0;
    if ((ier_ & ier_elsi) && overrun_) sources |= source_line_status;
    if ((ier_ & ier_erbfi) && rx_count_ > 0) sources |= source_rx_data;
    if ((ier_ & ier_etbei) && thre_pending_) sources |= source_thr_empty;
    return sources;
}

bool Serial::push_rx(std::uint8_t value) noexcept {
    if (rx_count_ == rx_capacity) return false;
    rx_[(rx_head_ + rx_count_) % rx_capacity] = value;
    ++rx_count_;
    return true;
}

// An empty RBR reads as zero.
std::uint8_t Serial::pop_rx() noexcept {
    if (rx_count_ == 0) return 0;
    std::uint8_t value = rx_[rx_head_];
    rx_head_ = (rx_head_ + 1) % rx_capacity;
    --rx_count_;
    return value;
}

bool Serial::dlab() const noexcept {
    return (lcr_ & lcr_dlab) != 0;
}
bool Serial::loopback() const noexcept {
    return (mcr_ & mcr_loop) != 0;
}

void Serial::save(StateWriter& out) const {
    std::lock_guard lock(mutex_);
    out.put(rx_);
    out.put(static_cast<std::uint32_t>(rx_head_));
    out.put(static_cast<std::uint32_t>(rx_count_));
    for (std::uint8_t r : {ier_, lcr_, mcr_, scr_, dll_, dlm_}) out.put(r);
    out.put_bool(fifo_enabled_);
    out.put_bool(overrun_);
    out.put_bool(thre_pending_);
}

void Serial::load(StateReader& in) {
    auto const rx = in.get<std::array<std::uint8_t, rx_capacity>>();
    auto const head = in.get<std::uint32_t>();
    auto const count = in.get<std::uint32_t>();
    std::array<std::uint8_t, 6> registers{};  // IER, LCR, MCR, SCR, DLL, DLM
    for (auto& r : registers) r = in.get<std::uint8_t>();
    bool const fifo_enabled = in.get_bool();
    bool const overrun = in.get_bool();
    bool const thre_pending = in.get_bool();
    in.finish();
    if (head >= rx_capacity || count > rx_capacity) throw in.malformed("receive buffer index out of range");
    if ((registers[0] & ~ier_mask) != 0) throw in.malformed("IER bits 4-7 set");
    std::lock_guard lock(mutex_);
    rx_ = rx;
    rx_head_ = head;
    rx_count_ = count;
    ier_ = registers[0], lcr_ = registers[1], mcr_ = registers[2];
    scr_ = registers[3], dll_ = registers[4], dlm_ = registers[5];
    fifo_enabled_ = fifo_enabled;
    overrun_ = overrun;
    thre_pending_ = thre_pending;
    update_batching();
}

}  // namespace kvmlet
