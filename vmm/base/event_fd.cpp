#include "vmm/base/event_fd.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/base/error.hpp"

namespace kvmlet {

EventFd::EventFd() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!fd_.valid()) throw system_error("eventfd");
}

bool EventFd::signal() const noexcept {
    std::uint64_t one = 1;
    return ::write(fd_.get(), &one, sizeof one) == sizeof one;
}

std::uint64_t EventFd::consume() const noexcept {
    std::uint64_t value = 0;
    if (::read(fd_.get(), &value, sizeof value) != sizeof value) return 0;
    return value;
}

}  // namespace kvmlet
