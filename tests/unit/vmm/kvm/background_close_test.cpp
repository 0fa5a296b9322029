#include "vmm/kvm/background_close.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <thread>
#include <vector>

namespace kvmlet {
namespace {

// Whether a pipe still has a reader: a write to one without any fails with EPIPE.
bool has_reader(int write_end) {
    char const byte = 'x';
    return ::write(write_end, &byte, 1) == 1;
}

}  // namespace

// A pipe's read end stands in for the VM's descriptor: it stays open (a write still finds a reader)
// while the caller holds the release, also after the caller closed its own copy, and closes once
// the release is closed.
TEST_CASE("The closer keeps its copies of the VM's descriptors until the caller releases it") {
    std::signal(SIGPIPE, SIG_IGN);
    int ends[2];
    REQUIRE(::pipe2(ends, O_CLOEXEC | O_NONBLOCK) == 0);
    UniqueFd reader(ends[0]), writer(ends[1]);
    int const vm_fds[] = {reader.get()};

    UniqueFd release = close_in_background(vm_fds);
    REQUIRE(release.valid());
    reader.reset();  // the caller's own copy, closed as ~Machine's members do
    // Time for a closer that would not wait to close its copy: then the reader is gone.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(has_reader(writer.get()));

    release.reset();
    bool gone = false;
    for (int i = 0; i < 500 && !gone; ++i) {  // up to 5 s: the closer runs when it is scheduled
        gone = !has_reader(writer.get());
        if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(gone);
}

TEST_CASE("close_in_background refuses no descriptors and more than it can hold") {
    CHECK_FALSE(close_in_background({}).valid());
    std::vector<int> many(32, 0);
    CHECK_FALSE(close_in_background(many).valid());
}

}  // namespace kvmlet
