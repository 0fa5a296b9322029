#include "vmm/api/api_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <optional>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/unique_fd.hpp"
#include "vmm/security/seccomp.hpp"

namespace kvmlet::api {
namespace {

namespace http = boost::beast::http;
using boost::asio::local::stream_protocol;

log::RateLimit session_log_limit{10, std::chrono::seconds(10)};

// Whether some process accepts connections on the socket at `path`.
bool somebody_listens(std::string const& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) throw system_error("api: socket");
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    return ::connect(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof(address)) == 0;
}

// Makes `path` free for a new socket: a stale socket is removed, anything else is an error.
void claim_path(std::string const& path) {
    if (path.empty()) throw Error("api socket: empty path");
    if (path.size() >= sizeof(sockaddr_un::sun_path))
        throw Error(
            fmt::format("api socket {}: path longer than {} bytes", path, sizeof(sockaddr_un::sun_path) - 1));
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        throw system_error(fmt::format("api socket {}", path));
    }
    if (!S_ISSOCK(st.st_mode)) throw Error(fmt::format("api socket {}: exists and is not a socket", path));
    if (somebody_listens(path))
        throw Error(fmt::format("api socket {}: another process is listening on it", path));
    if (::unlink(path.c_str()) != 0)
        throw system_error(fmt::format("api socket {}: removing the stale socket", path));
    log::info("api socket {}: replaced a stale socket", path);
}

}  // namespace

class ApiServer::Session : public std::enable_shared_from_this<Session> {
public:
    Session(stream_protocol::socket socket, Handler& handler)
        : socket_(std::move(socket)), deadline_(socket_.get_executor()), handler_(handler) {}

    bool closed() const noexcept { return closed_; }
    // Since when it waits for (the rest of) a request; nullopt while one is being served.
    std::optional<std::chrono::steady_clock::time_point> reading_since() const noexcept {
        return reading_since_;
    }

    void close() {
        closed_ = true;
        boost::system::error_code ignored;
        socket_.shutdown(stream_protocol::socket::shutdown_both, ignored);
        socket_.close(ignored);
        deadline_.cancel();
    }

    void read() {
        reading_since_ = std::chrono::steady_clock::now();
        parser_.emplace();
        parser_->header_limit(max_header_bytes);
        parser_->body_limit(max_request_body);
        arm_deadline();
        http::async_read(
            socket_, buffer_, *parser_,
            [self = shared_from_this()](boost::beast::error_code ec, std::size_t) { self->on_read(ec); });
    }

private:
    void arm_deadline() {
        deadline_.expires_after(idle_timeout);
        deadline_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
            if (ec) return;  // cancelled: the read or write finished in time
            if (auto self = weak.lock()) self->close();
        });
    }

    void on_read(boost::beast::error_code ec) {
        deadline_.cancel();
        reading_since_.reset();
        if (ec == http::error::body_limit) {
            bool mmds = parser_->get().target().starts_with("/mmds");
            keep_alive_ = false;
            respond(ApiResponse::fault(
                fmt::format("Request payload is larger than the limit of {} bytes.", max_request_body),
                mmds ? 413 : 400));
            return;
        }
        if (ec) {
            if (ec != http::error::end_of_stream && ec != boost::asio::error::operation_aborted &&
                ec != boost::asio::error::eof && session_log_limit.allow())
                log::debug("api: closing a connection: {}", ec.message());
            close();
            return;
        }
        auto& request = parser_->get();
        keep_alive_ = request.keep_alive();
        ApiRequest api{std::string(request.method_string()), std::string(request.target()),
                       std::move(request.body())};
        auto executor = socket_.get_executor();
        handler_(api, [self = shared_from_this(), executor](ApiResponse response) {
            boost::asio::post(executor, [self, response = std::move(response)]() mutable {
                self->respond(std::move(response));
            });
        });
    }

    void respond(ApiResponse response) {
        response_ = {};
        response_.version(11);
        response_.result(static_cast<http::status>(response.status));
        response_.set(http::field::server, "kvmlet");
        if (!response.body.empty()) {
            response_.set(http::field::content_type, "application/json");
            response_.body() = std::move(response.body);
        }
        response_.keep_alive(keep_alive_);
        response_.prepare_payload();
        arm_deadline();
        http::async_write(socket_, response_,
                          [self = shared_from_this()](boost::beast::error_code ec, std::size_t) {
                              self->deadline_.cancel();
                              if (ec || !self->keep_alive_) {
                                  self->close();
                                  return;
                              }
                              self->read();
                          });
    }

    stream_protocol::socket socket_;
    boost::asio::steady_timer deadline_;
    Handler& handler_;
    bool closed_ = false;
    std::optional<std::chrono::steady_clock::time_point> reading_since_;
    boost::beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> response_;
    bool keep_alive_ = true;
};

ApiServer::ApiServer(std::string path, Handler handler)
    : path_(std::move(path)), handler_(std::move(handler)), acceptor_(io_) {
    claim_path(path_);
    acceptor_.open();
    // Mode 0600 from the start: the umask applies to bind(2); no other thread runs yet.
    mode_t old_mask = ::umask(0177);
    boost::system::error_code ec;
    acceptor_.bind(stream_protocol::endpoint(path_), ec);
    ::umask(old_mask);
    if (ec) throw Error(fmt::format("api socket {}: bind: {}", path_, ec.message()));
    acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
    if (ec) {
        ::unlink(path_.c_str());
        throw Error(fmt::format("api socket {}: listen: {}", path_, ec.message()));
    }
}

ApiServer::~ApiServer() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    ::unlink(path_.c_str());
}

void ApiServer::start() {
    accept();
    thread_ = std::thread([this] {
        ::pthread_setname_np(::pthread_self(), "api");
        security::confine(security::ThreadKind::api);  // before its first accept
        try {
            io_.run();
        } catch (std::exception const& e) {
            log::error("api: server stopped: {}", e.what());
        }
    });
}

void ApiServer::post(std::function<void()> work) {
    boost::asio::post(io_, std::move(work));
}

bool ApiServer::make_room() {
    sessions_.remove_if([](std::weak_ptr<Session> const& weak) {
        auto session = weak.lock();
        return !session || session->closed();
    });
    if (sessions_.size() < max_connections) return true;
    // The one that has waited longest for a request (an idle keep-alive connection, or a client
    // that stopped halfway): a client holding many connections open cannot lock others out.
    std::shared_ptr<Session> oldest;
    for (auto const& weak : sessions_) {
        auto session = weak.lock();
        auto since = session ? session->reading_since() : std::nullopt;
        if (since && (!oldest || *since < *oldest->reading_since())) oldest = session;
    }
    if (!oldest) return false;
    if (session_log_limit.allow())
        log::warn("api: {} connections open, closing the longest idle one", max_connections);
    oldest->close();
    return true;
}

void ApiServer::accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, stream_protocol::socket socket) {
        if (ec == boost::asio::error::operation_aborted) return;
        if (!ec) {
            if (make_room()) {
                auto session = std::make_shared<Session>(std::move(socket), handler_);
                sessions_.push_back(session);
                session->read();
            } else {
                if (session_log_limit.allow())
                    log::warn("api: {} connections busy, closing a new one", max_connections);
                boost::system::error_code ignored;
                socket.close(ignored);
            }
        } else if (session_log_limit.allow()) {
            log::warn("api: accept: {}", ec.message());
        }
        accept();
    });
}

}  // namespace kvmlet::api
