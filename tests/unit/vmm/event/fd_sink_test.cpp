#include "vmm/event/fd_sink.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <string_view>

#include "vmm/event/process_signals.hpp"

namespace kvmlet {
namespace {

std::span<std::byte const> as_bytes(std::string_view text) {
    return std::as_bytes(std::span(text.data(), text.size()));
}

struct Pipe {
    int fds[2] = {-1, -1};
    Pipe() { REQUIRE(::pipe2(fds, O_CLOEXEC) == 0); }
    ~Pipe() {
        for (int fd : fds)
            if (fd >= 0) ::close(fd);
    }
    int read_end() const { return fds[0]; }
    int write_end() const { return fds[1]; }
    void close_read_end() {
        ::close(fds[0]);
        fds[0] = -1;
    }
};

TEST_CASE("Output reaches the descriptor whole and nothing is counted as dropped") {
    Pipe pipe;
    FdSink sink(pipe.write_end());
    sink.write(as_bytes("hello"));
    char buffer[8]{};
    CHECK(::read(pipe.read_end(), buffer, sizeof buffer) == 5);
    CHECK(sink.wrote_anything());
    CHECK(sink.dropped_bytes() == 0);
    CHECK(sink.last_error() == 0);
}

TEST_CASE("Output to a pipe whose reader went away is dropped and counted, and the process lives on") {
    ignore_broken_pipes();  // as kvmlet's main() does
    Pipe pipe;
    FdSink sink(pipe.write_end());
    sink.write(as_bytes("seen"));
    pipe.close_read_end();
    sink.write(as_bytes("lost"));
    sink.write(as_bytes("also lost"));
    CHECK(sink.dropped_bytes() == 13);
    CHECK(sink.last_error() == EPIPE);
}

}  // namespace
}  // namespace kvmlet
