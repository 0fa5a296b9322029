#pragma once
namespace kvmlet {

// The only way a device interrupts the guest (STYLE.md §1): an irqfd in production, a recorder in
// tests. trigger() delivers one edge; it is safe to call from any thread.
class IrqLine {
public:
    virtual ~IrqLine() = default;
    virtual void trigger() noexcept = 0;
};

}  // namespace kvmlet
