#pragma once
// The event-loop side of a virtio-net device: it waits on the VMM thread's event loop for the
// endpoint (the TAP) to become readable or writable when the device asks (EndpointWatch), and
// then calls the device under its transport's lock. So RX and TX run on the VMM thread, and no
// vCPU thread ever waits for the TAP.
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "devices/virtio/net/net_device.hpp"
#include "devices/virtio/transport.hpp"

namespace kvmlet {

class NetBackend final : public virtio::EndpointWatch {
public:
    // `fd` is the endpoint's descriptor (duplicated here, so the device keeps its own).
    NetBackend(boost::asio::io_context& io, int fd);
    NetBackend(NetBackend const&) = delete;
    NetBackend& operator=(NetBackend const&) = delete;

    // Before the guest can activate the device: whom the callbacks go to.
    void attach(virtio::Transport& transport, virtio::NetDevice& device) noexcept;

    // EndpointWatch: called with the transport's lock held, on any thread; they only post.
    void watch_readable() noexcept override;
    void watch_writable() noexcept override;

private:
    void wait(boost::asio::posix::stream_descriptor::wait_type type) noexcept;

    boost::asio::io_context& io_;
    boost::asio::posix::stream_descriptor fd_;
    virtio::Transport* transport_ = nullptr;
    virtio::NetDevice* device_ = nullptr;
};

}  // namespace kvmlet
