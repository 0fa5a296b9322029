#include "vmm/event/console_input.hpp"

#include <fcntl.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "vmm/base/unique_fd.hpp"

namespace kvmlet::test {
namespace {

using namespace std::chrono_literals;

// Writes `bytes` to a non-blocking fd while running the loop, so the reader can make room.
void feed(int fd, boost::asio::io_context& io, std::string const& bytes) {
    std::size_t done = 0;
    auto const deadline = std::chrono::steady_clock::now() + 10s;
    while (done < bytes.size() && std::chrono::steady_clock::now() < deadline) {
        ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n > 0) done += static_cast<std::size_t>(n);
        io.run_for(1ms);
    }
    REQUIRE(done == bytes.size());
}

void run_until(boost::asio::io_context& io, auto const& condition) {
    auto const deadline = std::chrono::steady_clock::now() + 10s;
    while (!condition() && std::chrono::steady_clock::now() < deadline) io.run_for(1ms);
}

TEST_CASE("Ctrl-A x quits from a terminal even while the guest takes no input") {
    int master = -1, slave = -1;
    REQUIRE(::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0);
    UniqueFd master_fd(master), slave_fd(slave);
    termios raw{};
    REQUIRE(::tcgetattr(slave, &raw) == 0);
    ::cfmakeraw(&raw);
    REQUIRE(::tcsetattr(slave, TCSANOW, &raw) == 0);
    REQUIRE(::fcntl(master, F_SETFL, O_NONBLOCK) == 0);

    boost::asio::io_context io;
    bool quit = false;
    ConsoleInput input(
        io, slave, [](std::span<std::byte const>) { return std::size_t{0}; }, [&] { quit = true; });
    input.start();
    feed(master, io, std::string(ConsoleInput::pending_limit + 20000, 'a'));
    feed(master, io, "\x01x");
    run_until(io, [&] { return quit; });
    CHECK(quit);
    CHECK(input.dropped() > 0);
}

TEST_CASE("Input from a pipe waits in the pipe while the guest takes none, and none of it is lost") {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    UniqueFd read_end(fds[0]), write_end(fds[1]);
    REQUIRE(::fcntl(fds[1], F_SETFL, O_NONBLOCK) == 0);

    boost::asio::io_context io;
    bool taking = false;
    std::string received;
    ConsoleInput input(
        io, fds[0],
        [&](std::span<std::byte const> bytes) {
            if (!taking) return std::size_t{0};
            std::size_t n = std::min<std::size_t>(bytes.size(), 1000);
            received.append(reinterpret_cast<char const*>(bytes.data()), n);
            return n;
        },
        [] {});
    input.start();
    std::string sent;
    for (std::size_t i = 0; sent.size() < ConsoleInput::pending_limit + 30000; ++i)
        sent += std::to_string(i) + ' ';
    // The pipe holds 64 KiB, the input at most pending_limit: more than both in total would block,
    // so the writer stops once the pipe is full and the rest follows once the guest takes input.
    std::size_t written = 0;
    auto const deadline = std::chrono::steady_clock::now() + 2s;
    while (written < sent.size() && std::chrono::steady_clock::now() < deadline) {
        ssize_t n = ::write(fds[1], sent.data() + written, sent.size() - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        io.run_for(1ms);
    }
    CHECK(received.empty());
    taking = true;
    feed(fds[1], io, sent.substr(written));
    run_until(io, [&] { return received.size() == sent.size(); });
    CHECK(received == sent);
    CHECK(input.dropped() == 0);
}

}  // namespace
}  // namespace kvmlet::test
