#include "vmm/event/fd_sink.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include "vmm/base/timeline.hpp"

namespace kvmlet {

void FdSink::write(std::span<std::byte const> bytes) noexcept {
    if (!wrote_anything_.exchange(true, std::memory_order_relaxed)) process_timeline().mark(Phase::first_console_byte);
    while (!bytes.empty()) {
        ssize_t n = ::write(fd_, bytes.data(), bytes.size());
        if (n > 0) {
            bytes = bytes.subspan(static_cast<std::size_t>(n));
        } else if (n < 0 && errno == EAGAIN) {
            pollfd p{fd_, POLLOUT, 0};
            ::poll(&p, 1, 100);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            // Closed or broken output: the guest keeps running, its output is lost.
            drop(bytes.size(), n < 0 ? errno : EIO);
            return;
        }
    }
}

void FdSink::drop(std::size_t bytes, int err) noexcept {
    dropped_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    last_error_.store(err, std::memory_order_relaxed);
}

}  // namespace kvmlet
