#pragma once
// A 16550A UART as Linux's 8250 driver sees it (TI PC16550D datasheet, "Register Description";
// register offsets and bits are named in serial.cpp). Transmission is instantaneous: THR and the
// transmit FIFO are always empty again by the time the guest looks, so LSR.THRE and LSR.TEMT are
// always set. Received bytes come from the host through enqueue_input().
//
// Deliberate simplifications, none of which Linux's driver can observe as a fault:
// - The receive buffer holds rx_capacity (64) bytes whether or not FCR enables the FIFOs: larger than
//   the 16550A's 16 so the host hands stdin over in fewer rounds. The guest drains it while LSR.DR is
//   set. The FCR trigger level is ignored: "received data available" is pending while any byte is.
// - No character-timeout interrupt, no modem-status interrupt (the MSR delta bits stay clear), no
//   parity/framing/break errors. Overrun happens only in loopback mode (host input never overruns).
// - Accesses wider than one byte are ignored (reads return all-ones) and logged at debug level.
//
// Batched transmission: with batch_transmit(), writes to THR may be batched by the hypervisor
// (WriteBatching) while nothing can notice that they arrive late: the THR-empty interrupt disabled
// (IER.ETBEI clear) and no loopback. Linux's early and polled console writes (IER = 0, an LSR read
// before each byte) then cost one exit per byte instead of two; interrupt-driven transmission,
// which waits for the THR-empty interrupt after its writes, turns batching off by enabling ETBEI.
//
// Thread safety: read()/write() run on vCPU threads and enqueue_input() on the VMM thread; one mutex
// guards the state. The ByteSink is called with that mutex released (a second one keeps output
// in order), and IrqLine::trigger() after it is released, so a slow sink never stalls the VMM thread.
#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>

#include "devices/irq_line.hpp"
#include "devices/legacy/byte_sink.hpp"
#include "devices/legacy/write_batching.hpp"
#include "vmm/base/state_stream.hpp"
#include "vmm/bus/bus_device.hpp"

namespace kvmlet {

// The standard PC location of the first serial port (and its ISA interrupt).
inline constexpr std::uint64_t com1_port = 0x3f8;
inline constexpr std::uint32_t com1_irq = 4;

class Serial final : public BusDevice, public Persistent {
public:
    static constexpr std::uint64_t port_count = 8;  // insert with length port_count
    static constexpr std::size_t rx_capacity = 64;

    Serial(IrqLine& irq, ByteSink& output) noexcept : irq_(irq), output_(output) {}
    Serial(Serial const&) = delete;
    Serial& operator=(Serial const&) = delete;

    void read(IoAccess const& access, std::span<std::byte> data) noexcept override;
    void write(IoAccess const& access, std::span<std::byte const> data) noexcept override;

    // Host input. Accepts the prefix of `bytes` that fits in the receive buffer and returns its
    // length; the caller keeps the rest and offers it again later. Accepts nothing in loopback mode
    // (the serial input is disconnected there, datasheet "MCR bit 4").
    std::size_t enqueue_input(std::span<std::byte const> bytes) noexcept;
    // Lets `batching` batch THR writes while IER.ETBEI is clear and loopback is off (see above);
    // applied at once and after every register write and load(). Set before the guest runs; the
    // object must outlive this device.
    void batch_transmit(WriteBatching& batching) noexcept;

    // True while enqueue_input() would accept nothing: the VMM stops reading stdin until it clears.
    bool input_full() const noexcept;

    // Snapshot state: every register and the receive buffer (docs/snapshot.md, section serial).
    void save(StateWriter& out) const override;
    void load(StateReader& in) override;

private:
    std::uint8_t read_register(std::uint64_t offset) noexcept;
    std::optional<std::byte> write_register(std::uint64_t offset, std::uint8_t value) noexcept;
    void write_ier(std::uint8_t value) noexcept;
    void write_fcr(std::uint8_t value) noexcept;
    std::optional<std::byte> transmit(std::uint8_t value) noexcept;
    std::uint8_t read_iir() noexcept;
    std::uint8_t read_lsr() noexcept;
    std::uint8_t msr() const noexcept;
    std::uint8_t pending_sources() const noexcept;
    bool push_rx(std::uint8_t value) noexcept;
    std::uint8_t pop_rx() noexcept;
    bool dlab() const noexcept;
    bool loopback() const noexcept;
    void update_batching() noexcept;

    IrqLine& irq_;
    ByteSink& output_;
    mutable std::mutex mutex_;  // guards everything below
    std::mutex output_mutex_;   // taken while mutex_ is held, so output keeps the guest's order

    std::array<std::uint8_t, rx_capacity> rx_{};
    std::size_t rx_head_ = 0;
    std::size_t rx_count_ = 0;
    std::uint8_t ier_ = 0;
    std::uint8_t lcr_ = 0;
    std::uint8_t mcr_ = 0;
    std::uint8_t scr_ = 0;
    std::uint8_t dll_ = 0;
    std::uint8_t dlm_ = 0;
    bool fifo_enabled_ = false;
    bool overrun_ = false;
    bool thre_pending_ = false;  // THR-empty interrupt latched, cleared by IIR read or THR write
    WriteBatching* batching_ = nullptr;
    bool batched_ = false;  // what batching_ was last told
};

}  // namespace kvmlet
