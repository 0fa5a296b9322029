#pragma once
// Host input for the guest console: reads stdin on the VMM thread's event loop, passes it through
// the Ctrl-A escape filter, and hands it to the guest (serial FIFO or virtio-console buffers) as
// fast as the guest takes it. Input the guest cannot take yet is held, up to pending_limit bytes.
// Beyond that a terminal is still read, so that Ctrl-A x always works even when the guest takes
// nothing (its 16550 in loopback, no hvc buffers posted): what overflows is dropped and counted.
// A pipe or a file is simply read no further until there is room: nothing of it is lost.
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "vmm/base/unique_fd.hpp"
#include "vmm/event/escape_filter.hpp"

namespace kvmlet {

class ConsoleInput {
public:
    // `deliver` offers bytes to the guest and returns how many it took; `quit` runs on Ctrl-A x.
    using Deliver = std::function<std::size_t(std::span<std::byte const>)>;
    ConsoleInput(boost::asio::io_context& io, int fd, Deliver deliver, std::function<void()> quit);

    static constexpr std::size_t pending_limit = 64 * 1024;

    void start();
    // Bytes of terminal input dropped because the guest took none and the buffer was full.
    std::uint64_t dropped() const noexcept { return dropped_; }

private:
    void wait_readable();
    void read_some();
    void deliver_pending();
    bool may_read() const noexcept { return terminal_ || pending_.size() < pending_limit; }
    void hold(std::span<std::byte const> bytes);

    boost::asio::io_context& io_;
    UniqueFd fd_;                                                  // a duplicate of stdin
    std::optional<boost::asio::posix::stream_descriptor> stream_;  // empty when the fd cannot be polled
    boost::asio::steady_timer retry_;
    Deliver deliver_;
    std::function<void()> quit_;
    EscapeFilter filter_;
    std::vector<std::byte> pending_;
    bool eof_ = false;
    bool terminal_ = false;
    bool reading_ = false;      // a read is waiting or posted
    bool retry_armed_ = false;  // the timer will offer pending_ again
    std::uint64_t dropped_ = 0;
};

}  // namespace kvmlet
