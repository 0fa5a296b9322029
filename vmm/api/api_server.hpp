#pragma once
// The HTTP/1.1 server of the API: a Unix socket (mode 0600) served by Boost.Beast on a thread of
// its own, so no client can hold up the machine's event loop or its vCPUs. Each request goes to
// a handler with a reply callback, which may be called later and from any thread.
//
// Limits (a client is untrusted): at most max_connections at once (at the limit, the connection
// that has waited longest for its next request is closed to make room; when none waits, the new
// one is closed);
// request headers up to 8 KiB and bodies up to max_request_body bytes (more: 400, or 413 for
// /mmds, and the connection is closed); a connection that sends nothing for idle_timeout, or does
// not take its response within it, is closed.
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "vmm/api/api_router.hpp"

namespace kvmlet::api {

class ApiServer {
public:
    using Handler = std::function<void(ApiRequest const&, Reply)>;
    static constexpr std::size_t max_connections = 64;
    static constexpr std::size_t max_header_bytes = 8192;
    static constexpr std::chrono::seconds idle_timeout{30};

    // Binds and listens on `path`: a stale socket there (nobody listening) is replaced; a socket
    // another process listens on, or any other file, is an Error. Serving starts with start().
    ApiServer(std::string path, Handler handler);
    ApiServer(ApiServer const&) = delete;
    ApiServer& operator=(ApiServer const&) = delete;
    // Stops serving, joins the thread and removes the socket.
    ~ApiServer();

    void start();
    // Runs `work` on the API thread.
    void post(std::function<void()> work);
    std::string const& path() const noexcept { return path_; }

private:
    class Session;
    void accept();
    // Whether a new connection may open, after closing the longest idle one if need be.
    bool make_room();

    std::string path_;
    Handler handler_;
    boost::asio::io_context io_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    // Open connections, API thread only.
    std::list<std::weak_ptr<Session>> sessions_;
    std::thread thread_;
};

}  // namespace kvmlet::api
