#pragma once
// MSI-X (PCI 3.0 §6.8.2): the capability in configuration space, the vector table and the pending
// bit array in a BAR, and delivery through an MsiRouter. A vector fires only when MSI-X is enabled
// and neither the function nor the vector is masked; otherwise its pending bit is set and it
// fires when unmasked.
//
// Threads: trigger() comes from device executors, table and capability accesses from vCPU threads;
// one lock covers the state.
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "devices/pci/config_space.hpp"
#include "vmm/base/state_stream.hpp"

namespace kvmlet::pci {

struct MsiMessage {
    std::uint64_t address = 0;
    std::uint32_t data = 0;
    bool operator==(MsiMessage const&) const = default;
};

// How MSI-X vectors reach the guest: KVM GSI routes and irqfds in the VMM, a recorder in tests.
class MsiRouter {
public:
    virtual ~MsiRouter() = default;
    // Vector `vector` will now send `message` (called before the first signal with it).
    virtual void set_route(std::uint16_t vector, MsiMessage const& message) noexcept = 0;
    virtual void signal(std::uint16_t vector) noexcept = 0;
};

class Msix {
public:
    static constexpr std::uint16_t no_vector = 0xffff;  // virtio 1.2 §4.1.4.3: VIRTIO_MSI_NO_VECTOR
    static constexpr std::uint32_t entry_size = 16;
    static constexpr std::uint16_t max_vectors = 2048;

    // Throws Error for 0 or more than max_vectors vectors.
    Msix(std::uint16_t vectors, MsiRouter& router);

    // Set-up: adds the capability; the table and PBA live in BAR `bar` at the given offsets.
    void add_capability(ConfigSpace& config, std::uint8_t bar, std::uint32_t table_offset,
                        std::uint32_t pba_offset);
    std::uint32_t table_size() const noexcept {
        return static_cast<std::uint32_t>(entries_.size()) * entry_size;
    }
    std::uint32_t pba_size() const noexcept {
        return static_cast<std::uint32_t>((entries_.size() + 63) / 64 * 8);
    }
    std::uint16_t vectors() const noexcept { return static_cast<std::uint16_t>(entries_.size()); }

    // After any guest write to configuration space: picks up Enable and Function Mask.
    void config_written(ConfigSpace const& config) noexcept;
    // Guest accesses at an offset into the table / PBA: aligned dwords or qwords.
    void table_read(std::uint64_t offset, std::span<std::byte> data) const noexcept;
    void table_write(std::uint64_t offset, std::span<std::byte const> data) noexcept;
    void pba_read(std::uint64_t offset, std::span<std::byte> data) const noexcept;

    bool enabled() const noexcept;

    // Snapshots (docs/snapshot.md): the vector count, then per vector its message address, data,
    // vector control and pending bit. Enable and Function Mask are configuration space's: after
    // load(), config_written() picks them up and routes every deliverable vector again (the KVM
    // MSI routes of a new VM). load() throws Error on another count or control bits beyond the
    // mask bit.
    void save(StateWriter& out) const;
    void load(StateReader& in);
    // Sends `vector` (or marks it pending while masked). Vectors out of range and no_vector are
    // ignored. Returns false when MSI-X is disabled: the device uses INTx then.
    bool trigger(std::uint16_t vector) noexcept;

private:
    struct Entry {
        std::uint32_t address_low = 0, address_high = 0, data = 0;
        std::uint32_t control = 1;  // §6.8.2.9: Mask Bit set after reset
        bool pending = false;
        std::optional<MsiMessage> routed;  // what the router was last told
        bool masked() const noexcept { return control & 1; }
        MsiMessage message() const noexcept {
            return {std::uint64_t{address_high} << 32 | address_low, data};
        }
    };
    bool deliverable(Entry const& entry) const noexcept {
        return enabled_ && !function_masked_ && !entry.masked();
    }
    void deliver_pending() noexcept;

    MsiRouter& router_;
    std::uint8_t capability_ = 0;
    mutable std::mutex mutex_;
    std::vector<Entry> entries_;
    bool enabled_ = false;
    bool function_masked_ = false;
};

}  // namespace kvmlet::pci
