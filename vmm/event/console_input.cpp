#include "vmm/event/console_input.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/asio/post.hpp>
#include <chrono>

#include "vmm/base/log.hpp"

namespace kvmlet {
namespace {
// How soon to offer held-back input again when the guest has not drained the FIFO.
constexpr auto retry_interval = std::chrono::milliseconds(2);
}  // namespace

ConsoleInput::ConsoleInput(boost::asio::io_context& io, int fd, Deliver deliver, std::function<void()> quit)
    : io_(io), fd_(::fcntl(fd, F_DUPFD_CLOEXEC, 0)), retry_(io), deliver_(std::move(deliver)), quit_(std::move(quit)) {
    if (!fd_.valid()) {
        eof_ = true;  // no stdin at all (closed): nothing to read
        return;
    }
    // Blocking on purpose: O_NONBLOCK would be shared with the terminal's other descriptors
    // (stdout) and outlive kvmlet. A read only follows readiness, so it does not block.
    // Regular files cannot be polled (epoll says EPERM); they are always readable, so they are read
    // directly, paced by the guest's progress. Everything else goes through the event loop.
    struct stat st {};
    if (::fstat(fd_.get(), &st) == 0 && S_ISREG(st.st_mode)) return;
    boost::system::error_code ec;
    stream_.emplace(io_);
    stream_->assign(::dup(fd_.get()), ec);
    if (ec) stream_.reset();
}

void ConsoleInput::start() {
    if (!eof_) wait_readable();
}

void ConsoleInput::wait_readable() {
    if (!stream_) {
        boost::asio::post(io_, [this] { read_some(); });
        return;
    }
    stream_->async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
        if (ec == boost::asio::error::operation_not_supported) {
            stream_.reset();  // not pollable after all (e.g. /dev/null): read it directly
            return read_some();
        }
        if (!ec) read_some();
    });
}

void ConsoleInput::read_some() {
    std::array<std::byte, 4096> buffer;
    ssize_t n = ::read(fd_.get(), buffer.data(), buffer.size());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return wait_readable();
    if (n <= 0) {
        eof_ = true;  // end of input: the guest keeps running, as with QEMU
        return;
    }
    auto out = filter_.feed(std::span{buffer.data(), static_cast<std::size_t>(n)});
    pending_.insert(pending_.end(), out.to_guest.begin(), out.to_guest.end());
    if (out.quit) {
        quit_();
        return;
    }
    deliver_pending();
}

void ConsoleInput::deliver_pending() {
    std::size_t taken = deliver_(pending_);
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(taken));
    if (pending_.empty()) return wait_readable();
    retry_.expires_after(retry_interval);
    retry_.async_wait([this](boost::system::error_code ec) {
        if (!ec) deliver_pending();
    });
}

}  // namespace kvmlet
