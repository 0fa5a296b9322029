#pragma once
// The VM's GSI routing table (KVM_SET_GSI_ROUTING replaces it whole): KVM's default routes for
// the PIC and IOAPIC pins, which must stay, plus one MSI route per MSI-X vector in use. An
// MSI-X vector is an irqfd on its own GSI, so raising it costs the device thread one eventfd
// write; the route tells KVM which message that GSI sends.
#include <linux/kvm.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "devices/pci/msix.hpp"
#include "vmm/base/event_fd.hpp"
#include "vmm/kvm/vm_fd.hpp"

namespace kvmlet {

class GsiRoutes {
public:
    explicit GsiRoutes(VmFd const& vm);

    // Reserves `count` consecutive GSIs above the IOAPIC's pins and returns the first. Throws
    // Error when KVM's table (KVM_MAX_IRQ_ROUTES) would overflow.
    std::uint32_t allocate(std::uint32_t count);
    // Points `gsi` at `message` and rewrites KVM's table. Returns false (and logs) on failure.
    bool set_msi(std::uint32_t gsi, pci::MsiMessage const& message) noexcept;

private:
    VmFd const& vm_;
    std::mutex mutex_;
    std::vector<kvm_irq_routing_entry> table_;        // the defaults, then one entry per MSI GSI
    std::map<std::uint32_t, std::size_t> msi_index_;  // GSI -> index in table_
    std::uint32_t next_gsi_;
};

// A device's MSI-X vectors as irqfds on GSIs of their own.
class KvmMsiRouter final : public pci::MsiRouter {
public:
    KvmMsiRouter(VmFd const& vm, GsiRoutes& routes, std::uint16_t vectors);
    void set_route(std::uint16_t vector, pci::MsiMessage const& message) noexcept override;
    void signal(std::uint16_t vector) noexcept override;

private:
    GsiRoutes& routes_;
    std::uint32_t first_gsi_;
    std::vector<std::unique_ptr<EventFd>> irqfds_;
};

}  // namespace kvmlet
