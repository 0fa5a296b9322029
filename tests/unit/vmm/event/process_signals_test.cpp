#include "vmm/event/process_signals.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>

namespace kvmlet {
namespace {

bool readable(int fd) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

struct sigaction current(int sig) {
    struct sigaction action {};
    ::sigaction(sig, nullptr, &action);
    return action;
}

}  // namespace

TEST_CASE("a stop signal is remembered for good and keeps the stop descriptor readable") {
    ProcessSignals signals;
    CHECK(signals.stop_signal() == 0);
    CHECK_FALSE(readable(signals.stop_fd()));

    ::raise(SIGTERM);
    CHECK(signals.stop_signal() == SIGTERM);
    CHECK(readable(signals.stop_fd()));
    CHECK(signals.stop_reason().kind == StopKind::signal);
    CHECK(signals.stop_reason().message == "received Terminated");

    // The first one counts; the descriptor stays readable for every later event loop.
    ::raise(SIGHUP);
    CHECK(signals.stop_signal() == SIGTERM);
    CHECK(readable(signals.stop_fd()));
}

TEST_CASE("the second stop signal, and only it, makes the again descriptor readable") {
    ProcessSignals signals;
    CHECK_FALSE(readable(signals.again_fd()));
    ::raise(SIGTERM);
    CHECK(readable(signals.stop_fd()));
    CHECK_FALSE(readable(signals.again_fd()));
    ::raise(SIGINT);
    CHECK(readable(signals.again_fd()));
    CHECK(signals.stop_signal() == SIGTERM);
}

TEST_CASE("SIGUSR2 makes a dump request that is taken once") {
    ProcessSignals signals;
    CHECK_FALSE(signals.take_dump_request());
    ::raise(SIGUSR2);
    ::raise(SIGUSR2);
    CHECK(readable(signals.dump_fd()));
    CHECK(signals.take_dump_request());
    CHECK_FALSE(readable(signals.dump_fd()));
    CHECK_FALSE(signals.take_dump_request());
    CHECK(signals.stop_signal() == 0);
}

TEST_CASE("process signals are installed once and put the old handlers back") {
    auto before = current(SIGINT).sa_handler;
    {
        ProcessSignals signals;
        CHECK(current(SIGINT).sa_handler != before);
        CHECK_THROWS_AS(ProcessSignals(), Error);
    }
    CHECK(current(SIGINT).sa_handler == before);
    CHECK(current(SIGUSR2).sa_handler == SIG_DFL);
    ProcessSignals again;  // and can be installed again
    CHECK(again.stop_signal() == 0);
}

TEST_CASE("with broken pipes ignored a write to a pipe nobody reads fails with EPIPE, for good") {
    ignore_broken_pipes();
    { ProcessSignals signals; }  // which must not put SIGPIPE's default back
    CHECK(current(SIGPIPE).sa_handler == SIG_IGN);
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    ::close(fds[0]);
    char const byte = 'x';
    CHECK(::write(fds[1], &byte, 1) == -1);
    CHECK(errno == EPIPE);
    ::close(fds[1]);
}

}  // namespace kvmlet
