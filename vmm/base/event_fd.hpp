#pragma once
#include <cstdint>

#include "vmm/base/unique_fd.hpp"

namespace kvmlet {

// An eventfd(2): the doorbell used for irqfd, ioeventfd and cross-thread wake-ups.
class EventFd {
public:
    EventFd();  // throws Error
    int fd() const noexcept { return fd_.get(); }
    bool signal() const noexcept;            // adds 1; false only if the counter is full
    std::uint64_t consume() const noexcept;  // reads and resets; 0 when nothing was pending

private:
    UniqueFd fd_;
};

}  // namespace kvmlet
