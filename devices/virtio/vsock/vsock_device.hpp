#pragma once
// virtio-vsock (virtio 1.2 §5.10), stream sockets only, in Firecracker's hybrid form: the guest's
// vsock connections are relayed to Unix stream sockets on the host.
// - A host process connects to `uds_path` and writes "CONNECT <port>\n"; the device sends the
//   guest a REQUEST to that port from a host port it allocates (2^30 upwards). On the guest's
//   RESPONSE it writes "OK <host port>\n" to the host socket, and the two then carry a byte
//   stream; on RST, or no RESPONSE within the request timeout, it closes the host socket.
// - A guest connection to host CID 2, port P goes to a Unix socket listening at
//   "<uds_path>_<P>" (connected without waiting); nobody listening there means RST.
//
// The guest is untrusted: a packet with a header that does not fit the chain, a length beyond
// the chain or 64 KiB, a type other than stream, an unknown op, or an op its connection's state
// does not allow is answered with RST (or, when its CIDs are not the guest's and the host's,
// dropped), and counted; the chain goes back used either way. Data beyond the credit the device
// gave is a protocol error too: per connection the device holds at most `buffer_bytes` of the
// guest's data that the host socket did not take yet (our buf_alloc).
//
// Bounds: at most max_connections connections (host-initiated ones waiting for their line
// included), packets_per_call packets per queue and events_per_call socket events per call,
// and a bounded control queue: when it is full (the guest posts no receive buffers) the device
// stops taking the guest's packets until it drains. No call blocks: every socket is
// non-blocking, and the device's own epoll set, watched through its DeviceHost as one fd, says
// which are ready. Memory: at most max_connections * buffer_bytes of guest data (256 MiB with
// the defaults, held only while host peers do not read).
//
// The event queue's buffers are kept for device events (§5.10.6.6); send_event() writes one.
// VIRTIO_VSOCK_EVENT_TRANSPORT_RESET after a snapshot restore is the one event there is.
#include <sys/uio.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "devices/virtio/active_state.hpp"
#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/counter.hpp"
#include "devices/virtio/virtio_device.hpp"
#include "devices/virtio/vsock/connection.hpp"
#include "devices/virtio/vsock/vsock_config.hpp"
#include "devices/virtio/vsock/vsock_spec.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet::virtio {

// Statistics, written by the device's thread and read by any (metrics, tests). rx is towards the
// guest, tx from it; bytes are payload bytes.
struct VsockCounters {
    using Counter = virtio::Counter;

    Counter rx_packets;
    Counter rx_bytes;
    Counter tx_packets;
    Counter tx_bytes;
    Counter connections_opened;   // guest REQUESTs connected, and host CONNECT lines accepted
    Counter connections_refused;  // nobody listening, the limit reached, a bad CONNECT line
    Counter resets_sent;          // RST packets queued for the guest
    Counter tx_malformed;         // short header, bad len, not a stream, unknown op: RST
    Counter tx_wrong_cid;         // dropped
    Counter protocol_errors;      // an op the connection's state forbids, data beyond credit: RST
    Counter rx_bad_buffers;       // receive chains too small for a header: given back unused
    Counter host_errors;          // a host socket failed (read, write, accept)
    Counter control_dropped;      // control packets lost to a full control queue (never expected)
};

class VsockDevice final : public Device {
public:
    static constexpr std::uint16_t queue_size = 256;
    static constexpr std::uint32_t packets_per_call = 256;
    static constexpr std::size_t events_per_call = 64;
    static constexpr std::size_t accepts_per_call = 16;
    // Control packets queued for the guest before the device stops taking its packets.
    static constexpr std::size_t control_soft_limit = 256;
    static constexpr auto accept_retry = std::chrono::milliseconds(100);

    // Listens on config.uds_path (a stale socket there is replaced). Throws Error for a CID out of
    // range, a path that does not fit a socket address, or a socket that cannot be made.
    explicit VsockDevice(VsockConfig config);
    VsockDevice(VsockDevice const&) = delete;
    VsockDevice& operator=(VsockDevice const&) = delete;
    ~VsockDevice() override;  // removes the socket file

    DeviceType type() const noexcept override { return DeviceType::vsock; }
    std::uint64_t features() const noexcept override;
    std::span<std::uint16_t const> queue_max_sizes() const noexcept override { return max_sizes_; }
    void read_config(std::uint64_t offset, std::span<std::byte> data) const noexcept override;
    bool activate(Activation activation) noexcept override;
    Work process_queue(std::size_t queue) noexcept override;
    void reset() noexcept override;

    // What the device host calls once the device's epoll fd is readable (the device asked).
    void host_events() noexcept;
    // Writes device event `id` into the driver's next event buffer; false when it has none.
    bool send_event(std::uint32_t id) noexcept;

    int epoll_fd() const noexcept { return epoll_.get(); }
    VsockConfig const& config() const noexcept { return config_; }
    VsockCounters const& counters() const noexcept { return counters_; }
    std::vector<Metric> metrics() const override;
    std::size_t connection_count() const noexcept { return connections_.size(); }

private:
    using Connection = vsock::Connection;
    using ConnectionKey = vsock::ConnectionKey;
    // A control packet for the guest; its credit fields are filled in when it is sent.
    struct Control {
        std::uint64_t connection = 0;  // 0: not tied to a live connection (an RST)
        ConnectionKey key;
        std::uint16_t op = 0;
        std::uint32_t flags = 0;
    };

    // Connections and the epoll set (vsock_device.cpp).
    Connection* find(std::uint64_t id) noexcept;
    Connection* find(ConnectionKey key) noexcept;
    Connection* add_connection(UniqueFd socket, std::uint32_t events) noexcept;
    void set_key(Connection& c, ConnectionKey key) noexcept;
    void remove(Connection& c) noexcept;
    void reset_connection(Connection& c) noexcept;
    void queue_control(Control control) noexcept;
    void queue_reset(ConnectionKey key) noexcept;
    void queue_credit_update(Connection& c) noexcept;
    void update_interest(Connection& c) noexcept;
    void arm_timer(Connection& c, std::chrono::milliseconds delay) noexcept;
    void timer_expired(std::uint64_t id, std::uint64_t generation) noexcept;
    void watch() noexcept;
    void warn(char const* what) noexcept;

    // Guest to host (vsock_tx.cpp).
    Work transmit() noexcept;
    void guest_packet(DescriptorChain const& chain) noexcept;
    bool packet_acceptable(vsock::Header const& header, ChainReader const& reader) noexcept;
    void connection_packet(Connection& c, vsock::Header const& header, DescriptorChain const& chain,
                           ChainReader& reader) noexcept;
    void open_to_host(vsock::Header const& header) noexcept;
    void guest_data(Connection& c, vsock::Header const& header, DescriptorChain const& chain,
                    ChainReader& reader) noexcept;
    void guest_shutdown(Connection& c, std::uint32_t flags) noexcept;
    bool flush(Connection& c) noexcept;
    bool flush_ack(Connection& c) noexcept;
    void after_flush(Connection& c) noexcept;
    void protocol_error(Connection& c, char const* what) noexcept;

    // Host to guest (vsock_rx.cpp).
    Work deliver() noexcept;
    std::optional<DescriptorChain> next_rx_chain() noexcept;
    bool send_control(DescriptorChain const& chain) noexcept;
    bool send_data(DescriptorChain& chain) noexcept;
    bool read_into(Connection& c, DescriptorChain const& chain, std::uint32_t credit) noexcept;
    bool read_failed(Connection& c, DescriptorChain const& chain, ssize_t result) noexcept;
    vsock::Header header_to_guest(ConnectionKey key, std::uint16_t op) const noexcept;
    vsock::Header header_to_guest(Connection& c, std::uint16_t op) noexcept;
    void put_packet(DescriptorChain const& chain, vsock::Header const& header) noexcept;

    // Host sockets (vsock_host.cpp).
    void host_event(std::uint64_t id, std::uint32_t events) noexcept;
    void accept_connections() noexcept;
    void read_connect_line(Connection& c) noexcept;
    void connect_to_guest(Connection& c, std::uint32_t guest_port) noexcept;
    void socket_event(Connection& c, std::uint32_t events) noexcept;
    void host_hung_up(Connection& c) noexcept;
    std::optional<std::uint32_t> allocate_host_port(std::uint32_t guest_port) noexcept;

    VsockConfig config_;
    vsock::Config config_space_{};
    std::array<std::uint16_t, 3> max_sizes_{queue_size, queue_size, queue_size};
    UniqueFd listener_;
    UniqueFd epoll_;

    std::optional<ActiveState> active_;
    bool watch_pending_ = false;  // survives reset(): the host still answers it
    bool listener_paused_ = false;
    std::unordered_map<std::uint64_t, Connection> connections_;
    std::map<ConnectionKey, std::uint64_t> by_key_;
    std::uint64_t next_id_ = 1;  // 0 is the listener's id in the epoll set
    std::uint32_t next_host_port_ = 1u << 30;
    std::deque<Control> control_;
    bool tx_paused_ = false;                   // the control queue filled up
    std::deque<std::uint64_t> readable_;       // connections to read into rx buffers, in turn
    std::optional<DescriptorChain> rx_spare_;  // popped, not used: filled first next time
    std::vector<iovec> iov_;                   // scratch for one chain; reserved once

    VsockCounters counters_;
    log::RateLimit failure_log_{10, std::chrono::seconds(5)};
};

}  // namespace kvmlet::virtio
