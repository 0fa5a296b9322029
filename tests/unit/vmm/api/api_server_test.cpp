#include "vmm/api/api_server.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>

#include "vmm/base/error.hpp"
#include "vmm/base/unique_fd.hpp"

using namespace kvmlet;
using namespace kvmlet::api;

namespace {

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char name[] = "/tmp/kvmlet-api-test.XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path = name;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

UniqueFd connect_to(std::string const& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof(address)) == 0);
    return fd;
}

void send_all(int fd, std::string const& data) {
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
        if (n <= 0) return;  // the server closed: what it answered is still to be read
        done += static_cast<std::size_t>(n);
    }
}

// Reads until the peer closes or `wanted` appears, for at most 5 s.
std::string read_until(int fd, std::string const& wanted = "") {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        char buf[4096];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (!wanted.empty() && out.find(wanted) != std::string::npos) break;
    }
    return out;
}

std::string request(std::string method, std::string target, std::string body = "", bool close = false) {
    return method + " " + target +
           " HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + std::to_string(body.size()) +
           (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
}

// Answers every request with 200 and "METHOD TARGET BODY", or 204 for a PUT.
ApiServer::Handler echo = [](ApiRequest const& r, Reply reply) {
    if (r.method == "PUT")
        reply(ApiResponse::no_content());
    else
        reply({200, Json{{"echo", r.method + " " + r.target + " " + r.body}}.dump()});
};

}  // namespace

TEST_CASE("the API socket is mode 0600 and answers HTTP/1.1 with keep-alive", "[api]") {
    TempDir dir;
    std::string path = (dir.path / "api.sock").string();
    ApiServer server(path, echo);
    server.start();
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    UniqueFd fd = connect_to(path);
    send_all(fd.get(), request("PUT", "/x", "{}"));
    std::string first = read_until(fd.get(), "\r\n\r\n");
    CHECK(first.starts_with("HTTP/1.1 204 No Content\r\n"));
    // 204: no body and no Content-Type (Firecracker's clients expect exactly this).
    CHECK(first.find("Content-Type") == std::string::npos);
    send_all(fd.get(), request("GET", "/y", "", true));
    std::string second = read_until(fd.get());
    CHECK(second.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(second.find(R"({"echo":"GET /y "})") != std::string::npos);
}

TEST_CASE("a body over 51,200 bytes is a 400, or a 413 for /mmds, and the connection closes", "[api]") {
    TempDir dir;
    std::string path = (dir.path / "api.sock").string();
    ApiServer server(path, echo);
    server.start();
    std::string big(max_request_body + 1, 'x');
    for (auto [target, status] : {std::pair{"/drives/a", "400"}, std::pair{"/mmds", "413"}}) {
        UniqueFd fd = connect_to(path);
        send_all(fd.get(), request("PUT", target, big));
        std::string answer = read_until(fd.get());
        INFO(answer);
        CHECK(answer.starts_with(std::string("HTTP/1.1 ") + status));
        CHECK(answer.find("fault_message") != std::string::npos);
    }
    // Exactly the limit is fine.
    UniqueFd fd = connect_to(path);
    send_all(fd.get(), request("PUT", "/mmds", std::string(max_request_body, 'x'), true));
    CHECK(read_until(fd.get()).starts_with("HTTP/1.1 204"));
}

TEST_CASE("garbage and oversized headers close only their own connection", "[api]") {
    TempDir dir;
    std::string path = (dir.path / "api.sock").string();
    ApiServer server(path, echo);
    server.start();
    UniqueFd garbage = connect_to(path);
    send_all(garbage.get(), "\x01\x02 not http\r\n\r\n");
    CHECK(read_until(garbage.get()).empty());  // closed without an answer
    UniqueFd huge = connect_to(path);
    send_all(huge.get(),
             "GET / HTTP/1.1\r\nX: " + std::string(ApiServer::max_header_bytes, 'a') + "\r\n\r\n");
    CHECK(read_until(huge.get()).empty());
    UniqueFd fine = connect_to(path);
    send_all(fine.get(), request("GET", "/", "", true));
    CHECK(read_until(fine.get()).starts_with("HTTP/1.1 200"));
}

TEST_CASE("a client that sends half a request does not hold up the others", "[api]") {
    TempDir dir;
    std::string path = (dir.path / "api.sock").string();
    ApiServer server(path, echo);
    server.start();
    std::vector<UniqueFd> slow;
    for (int i = 0; i < 10; ++i) {
        slow.push_back(connect_to(path));
        send_all(slow.back().get(), "PUT /x HTTP/1.1\r\nContent-Length: 100\r\n\r\n{");
    }
    UniqueFd fd = connect_to(path);
    send_all(fd.get(), request("GET", "/", "", true));
    CHECK(read_until(fd.get()).starts_with("HTTP/1.1 200"));
}

TEST_CASE("at max_connections a new client is served and the longest idle connection closed", "[api]") {
    TempDir dir;
    std::string path = (dir.path / "api.sock").string();
    ApiServer server(path, echo);
    server.start();
    std::vector<UniqueFd> open;
    for (std::size_t i = 0; i < ApiServer::max_connections; ++i) {
        open.push_back(connect_to(path));
        // One request each, answered: every connection is open and idle on the server's side.
        send_all(open.back().get(), request("GET", "/", ""));
        REQUIRE(read_until(open.back().get(), "}").starts_with("HTTP/1.1 200"));
    }
    // A client holding every slot cannot lock others out: the new one is served...
    UniqueFd extra = connect_to(path);
    send_all(extra.get(), request("GET", "/", "", true));
    CHECK(read_until(extra.get()).starts_with("HTTP/1.1 200"));
    // ...and the first, idle longest, was closed to make room.
    CHECK(read_until(open.front().get()).empty());
    send_all(open.back().get(), request("GET", "/", "", true));
    CHECK(read_until(open.back().get()).starts_with("HTTP/1.1 200"));
}

TEST_CASE("a stale socket is replaced, and a live one or another file is an error", "[api]") {
    TempDir dir;
    std::string path = (dir.path / "api.sock").string();
    {
        ApiServer first(path, echo);
        first.start();
        CHECK_THROWS_WITH(ApiServer(path, echo), Catch::Contains("another process is listening on it"));
    }
    CHECK_FALSE(std::filesystem::exists(path));  // removed on the way out
    // A socket file nobody listens on: left by a process that was killed.
    {
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        path.copy(address.sun_path, sizeof(address.sun_path) - 1);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr const*>(&address), sizeof(address)) == 0);
        ::close(fd);
    }
    REQUIRE(std::filesystem::exists(path));
    ApiServer replaced(path, echo);
    replaced.start();
    UniqueFd fd = connect_to(path);
    send_all(fd.get(), request("GET", "/", "", true));
    CHECK(read_until(fd.get()).starts_with("HTTP/1.1 200"));

    std::string plain = (dir.path / "file").string();
    std::filesystem::create_directory(plain);
    CHECK_THROWS_WITH(ApiServer(plain, echo), Catch::Contains("exists and is not a socket"));
}
