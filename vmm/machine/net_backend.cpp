#include "vmm/machine/net_backend.hpp"

#include <unistd.h>

#include <boost/asio/post.hpp>

#include "vmm/base/log.hpp"

namespace kvmlet {

NetBackend::NetBackend(boost::asio::io_context& io, int fd) : io_(io), fd_(io, ::dup(fd)) {}

void NetBackend::attach(virtio::Transport& transport, virtio::NetDevice& device) noexcept {
    transport_ = &transport;
    device_ = &device;
}

void NetBackend::watch_readable() noexcept { wait(boost::asio::posix::stream_descriptor::wait_read); }
void NetBackend::watch_writable() noexcept { wait(boost::asio::posix::stream_descriptor::wait_write); }

// The wait starts on the event loop's thread (a vCPU thread may be the caller, at DRIVER_OK).
void NetBackend::wait(boost::asio::posix::stream_descriptor::wait_type type) noexcept {
    try {
        boost::asio::post(io_, [this, type] {
            fd_.async_wait(type, [this, type](boost::system::error_code ec) {
                if (ec || !transport_) return;
                transport_->locked([&] {
                    if (type == boost::asio::posix::stream_descriptor::wait_read) device_->endpoint_readable();
                    else device_->endpoint_writable();
                });
            });
        });
    } catch (std::exception const& e) {
        log::error("virtio-net: cannot wait for the endpoint: {}", e.what());
    }
}

}  // namespace kvmlet
