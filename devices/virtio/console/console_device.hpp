#pragma once
// virtio-console (virtio 1.2 §5.3) with one port, port 0, used as the guest's console (hvc0):
// what the guest transmits goes to a ByteSink (stdout), host input fills the guest's receive
// buffers. No MULTIPORT, no emergency write: the two queues of port 0 are all there is.
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "devices/legacy/byte_sink.hpp"
#include "devices/virtio/active_state.hpp"
#include "devices/virtio/counter.hpp"
#include "devices/virtio/virtio_device.hpp"

namespace kvmlet::virtio {

class ConsoleDevice final : public Device {
public:
    static constexpr std::size_t receive_queue = 0;
    static constexpr std::size_t transmit_queue = 1;
    static constexpr std::uint16_t queue_size = 256;

    explicit ConsoleDevice(ByteSink& output) noexcept : output_(output) {}

    DeviceType type() const noexcept override { return DeviceType::console; }
    std::uint64_t features() const noexcept override;
    std::span<std::uint16_t const> queue_max_sizes() const noexcept override { return max_sizes_; }
    void read_config(std::uint64_t offset, std::span<std::byte> data) const noexcept override;
    bool activate(Activation activation) noexcept override;
    Work process_queue(std::size_t queue) noexcept override;
    void reset() noexcept override;

    // Per call at most this much output, and this many chains of input or output (then `more`).
    static constexpr std::uint64_t transmit_bytes_per_call = 1 << 20;
    static constexpr std::uint32_t chains_per_call = queue_size;

    // Puts host input into the guest's receive buffers; returns how many bytes it took (0 while
    // the driver is not ready or has no buffers: the caller keeps the rest and offers it again).
    // Uses at most chains_per_call chains.
    std::size_t enqueue_input(std::span<std::byte const> bytes) noexcept;
    bool takes_console_input() const noexcept override { return true; }
    std::size_t console_input(std::span<std::byte const> bytes) noexcept override {
        return enqueue_input(bytes);
    }

    std::uint64_t bytes_out() const noexcept { return bytes_out_.value(); }
    std::uint64_t bytes_in() const noexcept { return bytes_in_.value(); }
    std::vector<Metric> metrics() const override {
        return {{"tx_bytes_count", bytes_out_.value()}, {"rx_bytes_count", bytes_in_.value()}};
    }

    // Snapshots: how much of the transmit chain cut short was written already. That chain is
    // given back (next_avail rewound over it): the restore takes it again and writes the rest.
    bool saveable() const noexcept override { return true; }
    void save(StateWriter& out) const override;
    void load(StateReader& in) override;
    std::vector<QueueIndices> queue_indices() const override;

private:
    Work transmit() noexcept;

    ByteSink& output_;
    std::array<std::uint16_t, 2> max_sizes_{queue_size, queue_size};
    std::optional<ActiveState> active_;
    // A transmit chain larger than one call's budget: the bytes of it already written.
    std::optional<DescriptorChain> tx_held_;
    std::uint64_t tx_held_done_ = 0;
    Counter bytes_out_;
    Counter bytes_in_;
};

}  // namespace kvmlet::virtio
