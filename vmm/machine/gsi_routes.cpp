#include "vmm/machine/gsi_routes.hpp"

#include <cstring>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"

namespace kvmlet {
namespace {

// KVM's x86 limits and defaults (Documentation/virt/kvm/api.rst, KVM_SET_GSI_ROUTING; the
// default table of arch/x86/kvm/irq_comm.c): GSI n < 16 drives PIC pin n and IOAPIC pin n, GSI
// 16..23 the IOAPIC only.
constexpr std::uint32_t max_routes = 4096;  // KVM_MAX_IRQ_ROUTES
constexpr std::uint32_t ioapic_pins = 24;
constexpr std::uint32_t pic_pins = 16;

kvm_irq_routing_entry irqchip_route(std::uint32_t gsi, std::uint32_t chip, std::uint32_t pin) {
    kvm_irq_routing_entry entry{};
    entry.gsi = gsi;
    entry.type = KVM_IRQ_ROUTING_IRQCHIP;
    entry.u.irqchip.irqchip = chip;
    entry.u.irqchip.pin = pin;
    return entry;
}

log::RateLimit route_log{5, std::chrono::seconds(10)};

}  // namespace

GsiRoutes::GsiRoutes(VmFd const& vm) : vm_(vm), next_gsi_(ioapic_pins) {
    for (std::uint32_t gsi = 0; gsi < ioapic_pins; ++gsi) {
        if (gsi < pic_pins)
            table_.push_back(
                irqchip_route(gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8));
        table_.push_back(irqchip_route(gsi, KVM_IRQCHIP_IOAPIC, gsi));
    }
}

std::uint32_t GsiRoutes::allocate(std::uint32_t count) {
    std::lock_guard lock(mutex_);
    if (count > max_routes - next_gsi_) throw Error("out of GSIs for MSI-X vectors");
    std::uint32_t const first = next_gsi_;
    next_gsi_ += count;
    return first;
}

bool GsiRoutes::set_msi(std::uint32_t gsi, pci::MsiMessage const& message) noexcept {
    kvm_irq_routing_entry entry{};
    entry.gsi = gsi;
    entry.type = KVM_IRQ_ROUTING_MSI;
    entry.u.msi.address_lo = static_cast<std::uint32_t>(message.address);
    entry.u.msi.address_hi = static_cast<std::uint32_t>(message.address >> 32);
    entry.u.msi.data = message.data;
    std::lock_guard lock(mutex_);
    try {
        auto [it, added] = msi_index_.try_emplace(gsi, table_.size());
        if (added)
            table_.push_back(entry);
        else
            table_[it->second] = entry;
    } catch (std::bad_alloc const&) {
        return false;
    }
    if (vm_.set_gsi_routing(table_)) return true;
    if (route_log.allow()) log::error("KVM_SET_GSI_ROUTING (GSI {}): {}", gsi, std::strerror(errno));
    return false;
}

KvmMsiRouter::KvmMsiRouter(VmFd const& vm, GsiRoutes& routes, std::uint16_t vectors)
    : routes_(routes), first_gsi_(routes.allocate(vectors)) {
    for (std::uint16_t v = 0; v < vectors; ++v) {
        irqfds_.push_back(std::make_unique<EventFd>());
        // Before its route exists the GSI sends nothing; KVM re-reads routes for irqfds on every
        // table update.
        vm.register_irqfd(irqfds_.back()->fd(), first_gsi_ + v);
    }
}

void KvmMsiRouter::set_route(std::uint16_t vector, pci::MsiMessage const& message) noexcept {
    if (vector < irqfds_.size()) routes_.set_msi(first_gsi_ + vector, message);
}

void KvmMsiRouter::signal(std::uint16_t vector) noexcept {
    if (vector < irqfds_.size()) irqfds_[vector]->signal();
}

}  // namespace kvmlet
