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
log::RateLimit dropped_log{1, std::chrono::seconds(10)};
}  // namespace

ConsoleInput::ConsoleInput(boost::asio::io_context& io, int fd, Deliver deliver, std::function<void()> quit)
    : io_(io),
      fd_(::fcntl(fd, F_DUPFD_CLOEXEC, 0)),
      retry_(io),
      deliver_(std::move(deliver)),
      quit_(std::move(quit)) {
    if (!fd_.valid()) {
        eof_ = true;  // no stdin at all (closed): nothing to read
        return;
    }
    // Blocking on purpose: O_NONBLOCK would be shared with the terminal's other descriptors
    // (stdout) and outlive kvmlet. A read only follows readiness, so it does not block.
    // Regular files cannot be polled (epoll says EPERM); they are always readable, so they are read
    // directly, paced by the guest's progress. Everything else goes through the event loop.
    terminal_ = ::isatty(fd_.get()) == 1;
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
    if (eof_ || reading_ || !may_read()) return;
    reading_ = true;
    if (!stream_) {
        boost::asio::post(io_, [this] { read_some(); });
        return;
    }
    stream_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [this](boost::system::error_code ec) {
                            if (ec == boost::asio::error::operation_not_supported) {
                                stream_.reset();  // not pollable after all (e.g. /dev/null): read it directly
                                return read_some();
                            }
                            if (ec) return;
                            read_some();
                        });
}

void ConsoleInput::read_some() {
    reading_ = false;
    std::array<std::byte, 4096> buffer;
    // A pipe or file is read only as far as there is room: the rest waits where it is.
    std::size_t const room = pending_limit - std::min(pending_.size(), pending_limit);
    std::size_t const want = terminal_ ? buffer.size() : std::min(buffer.size(), room);
    ssize_t n = ::read(fd_.get(), buffer.data(), want);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return wait_readable();
    if (n <= 0) {
        eof_ = true;  // end of input: the guest keeps running, as with QEMU
        return;
    }
    auto out = filter_.feed(std::span{buffer.data(), static_cast<std::size_t>(n)});
    hold(out.to_guest);
    if (out.quit) {
        quit_();
        return;
    }
    deliver_pending();
    wait_readable();
}

// Keeps what fits under pending_limit (only a terminal is read past it) and counts the rest.
void ConsoleInput::hold(std::span<std::byte const> bytes) {
    std::size_t const room = pending_limit - std::min(pending_.size(), pending_limit);
    std::size_t const kept = std::min(room, bytes.size());
    pending_.insert(pending_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(kept));
    if (kept == bytes.size()) return;
    dropped_ += bytes.size() - kept;
    if (dropped_log.allow())
        log::warn(
            "console: the guest takes no input; {} bytes typed since were dropped (Ctrl-A x still quits)",
            dropped_);
}

void ConsoleInput::deliver_pending() {
    std::size_t taken = deliver_(pending_);
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(taken));
    wait_readable();  // room again, perhaps
    if (pending_.empty() || retry_armed_) return;
    retry_armed_ = true;
    retry_.expires_after(retry_interval);
    retry_.async_wait([this](boost::system::error_code ec) {
        retry_armed_ = false;
        if (!ec) deliver_pending();
    });
}

}  // namespace kvmlet
