#pragma once
// Host input for the guest console: reads stdin on the VMM thread's event loop, passes it through
// the Ctrl-A escape filter, and hands it to the serial port as fast as the guest drains its FIFO.
// Bytes the FIFO cannot take yet are kept, never dropped.
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

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

    void start();

private:
    void wait_readable();
    void read_some();
    void deliver_pending();

    boost::asio::io_context& io_;
    UniqueFd fd_;  // a duplicate of stdin
    std::optional<boost::asio::posix::stream_descriptor> stream_;  // empty when the fd cannot be polled
    boost::asio::steady_timer retry_;
    Deliver deliver_;
    std::function<void()> quit_;
    EscapeFilter filter_;
    std::vector<std::byte> pending_;
    bool eof_ = false;
};

}  // namespace kvmlet
