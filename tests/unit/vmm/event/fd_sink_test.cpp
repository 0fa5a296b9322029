#include "vmm/event/fd_sink.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "vmm/base/timeline.hpp"
#include "vmm/event/process_signals.hpp"

namespace kvmlet {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;
constexpr std::string_view not_read = "the reader stopped reading or fell behind";

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
    std::size_t capacity() const { return static_cast<std::size_t>(::fcntl(fds[1], F_GETPIPE_SZ)); }
    void close_read_end() {
        ::close(fds[0]);
        fds[0] = -1;
    }
    void close_write_end() {
        ::close(fds[1]);
        fds[1] = -1;
    }
};

// Runs `work` on a thread of its own and waits for it at most `limit`. If it is late (a write
// blocked on the full pipe), `release` unblocks it so that the test fails instead of hanging.
template <class Work, class Release>
bool finishes_within(std::chrono::milliseconds limit, Work work, Release release) {
    std::promise<void> done;
    std::future<void> finished = done.get_future();
    std::thread worker([&] {
        work();
        done.set_value();
    });
    bool const in_time = finished.wait_for(limit) == std::future_status::ready;
    if (!in_time) release();
    worker.join();
    return in_time;
}

// `total` bytes of consecutive 32-bit word numbers, handed over in pieces of 4 KiB.
void write_counting(FdSink& sink, std::size_t total) {
    std::vector<std::uint32_t> piece(4 * KiB / sizeof(std::uint32_t));
    std::uint32_t next = 0;
    for (std::size_t done = 0; done < total; done += 4 * KiB) {
        for (auto& word : piece) word = next++;
        sink.write(std::as_bytes(std::span(piece)));
    }
}

// Everything the read end gives until end of file, or until `limit` passed.
std::vector<std::byte> read_all(int fd, std::chrono::milliseconds limit = 10s) {
    std::vector<std::byte> all;
    std::byte buffer[64 * KiB];
    auto const deadline = Clock::now() + limit;
    for (;;) {
        auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) return all;
        ssize_t const n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return all;
        all.insert(all.end(), buffer, buffer + n);
    }
}

// Whether the word numbers come in increasing order (gaps allowed: dropped output), from 0 on.
bool in_order(std::vector<std::byte> const& bytes) {
    if (bytes.size() % sizeof(std::uint32_t) != 0) return false;
    std::int64_t previous = -1;
    for (std::size_t at = 0; at < bytes.size(); at += sizeof(std::uint32_t)) {
        std::uint32_t word;
        std::memcpy(&word, bytes.data() + at, sizeof word);
        if (static_cast<std::int64_t>(word) <= previous || (previous < 0 && word != 0)) return false;
        previous = word;
    }
    return true;
}

// The blocked-signal mask of this process's thread named `name`, if there is one.
std::optional<std::uint64_t> blocked_signals_of(std::string const& name) {
    DIR* tasks = ::opendir("/proc/self/task");
    if (tasks == nullptr) return std::nullopt;
    std::optional<std::uint64_t> mask;
    while (dirent* entry = ::readdir(tasks)) {
        std::string const task = std::string("/proc/self/task/") + entry->d_name;
        std::string comm;
        if (!std::getline(std::ifstream(task + "/comm"), comm) || comm != name) continue;
        std::ifstream status(task + "/status");
        for (std::string line; std::getline(status, line);)
            if (line.rfind("SigBlk:", 0) == 0) mask = std::stoull(line.substr(7), nullptr, 16);
    }
    ::closedir(tasks);
    return mask;
}

TEST_CASE("Output reaches the descriptor whole and nothing is counted as dropped") {
    Pipe pipe;
    FdSink sink(pipe.write_end());
    sink.write(as_bytes("hello"));
    char buffer[8]{};
    CHECK(::read(pipe.read_end(), buffer, sizeof buffer) == 5);
    CHECK(std::string_view(buffer, 5) == "hello");
    CHECK(sink.wrote_anything());
    CHECK(sink.dropped_bytes() == 0);
    CHECK(sink.last_error() == 0);
}

TEST_CASE("Output to a regular file is in the file when write() returns") {
    char path[] = "/tmp/kvmlet-fd-sink-XXXXXX";
    int const fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::unlink(path);
    {
        FdSink sink(fd);
        std::string const big(300 * 1024, 'x');  // larger than one pipe's worth
        sink.write(as_bytes("flushed 10\n"));
        sink.write(as_bytes(big));
        struct stat st {};
        REQUIRE(::fstat(fd, &st) == 0);
        CHECK(st.st_size ==
              static_cast<off_t>(11 + big.size()));  // before finish(): a SIGKILL now loses none
        CHECK(sink.dropped_bytes() == 0);
    }
    char head[11]{};
    CHECK(::pread(fd, head, sizeof head, 0) == 11);
    CHECK(std::string_view(head, 11) == "flushed 10\n");
    ::close(fd);
}

TEST_CASE("Output to a pipe whose reader went away is dropped and counted, and the process lives on") {
    ignore_broken_pipes();  // as kvmlet's main() does
    Pipe pipe;
    FdSink sink(pipe.write_end());
    sink.write(as_bytes("seen"));
    char buffer[8]{};
    REQUIRE(::read(pipe.read_end(), buffer, sizeof buffer) == 4);
    pipe.close_read_end();
    sink.write(as_bytes("lost"));
    sink.write(as_bytes("also lost"));
    sink.finish();
    CHECK(sink.dropped_bytes() == 13);
    CHECK(sink.last_error() == EPIPE);
    CHECK(sink.drop_reason() == std::strerror(EPIPE));
}

TEST_CASE(
    "A pipe nobody reads does not block write(), what does not fit is dropped, and the rest comes in order") {
    ignore_broken_pipes();  // the release of a blocked write closes the read end
    Pipe pipe;
    std::size_t const held = FdSink::Limits{}.buffer_bytes + pipe.capacity();
    std::size_t const total = 4 * MiB;
    auto sink = std::make_unique<FdSink>(pipe.write_end());
    auto const start = Clock::now();
    REQUIRE(finishes_within(
        5s, [&] { write_counting(*sink, total); }, [&] { pipe.close_read_end(); }));
    CHECK(Clock::now() - start < 1s);  // memcpy speed: no write waits for the reader
    CHECK(process_timeline().reached(Phase::first_console_byte));  // handed over, if not written
    // The buffer and the pipe hold what they can; the writer may have made room once, as far as
    // the pipe took, before write() stopped being called.
    std::uint64_t const dropped = sink->dropped_bytes();
    CHECK(dropped >= total - held);
    CHECK(dropped <= total - FdSink::Limits{}.buffer_bytes);
    CHECK(sink->drop_reason() == not_read);
    CHECK(sink->last_error() == 0);

    // The reader comes back: everything held reaches it, in order, before the sink is gone.
    std::future<std::vector<std::byte>> received =
        std::async(std::launch::async, [fd = pipe.read_end()] { return read_all(fd); });
    sink->finish();
    CHECK(sink->dropped_bytes() == dropped);
    sink.reset();
    pipe.close_write_end();  // the sink's own duplicate is closed: the reader sees end of file
    std::vector<std::byte> const bytes = received.get();
    CHECK(bytes.size() + dropped == total);
    CHECK(in_order(bytes));
}

TEST_CASE("Destroying a sink nobody reads returns after the flush limit, and its writer ends later") {
    ignore_broken_pipes();
    Pipe pipe;
    std::size_t const pipe_bytes = pipe.capacity();
    auto sink = std::make_unique<FdSink>(pipe.write_end());
    REQUIRE(finishes_within(
        5s, [&] { write_counting(*sink, 2 * MiB); }, [&] { pipe.close_read_end(); }));
    auto const start = Clock::now();
    // The writer is blocked in write(2) for good; the destructor must not wait for it.
    CHECK(finishes_within(
        FdSink::Limits{}.flush_limit + 2s, [&] { sink.reset(); }, [&] { pipe.close_read_end(); }));
    auto const took = Clock::now() - start;
    CHECK(took >= FdSink::Limits{}.flush_limit - 50ms);
    CHECK(took < FdSink::Limits{}.flush_limit + 1s);
    // The writer left behind writes no more than the write(2) it was in (at most 64 KiB), then
    // ends and closes its duplicate of the write end: the reader sees end of file.
    pipe.close_write_end();
    std::vector<std::byte> const bytes = read_all(pipe.read_end());
    CHECK(bytes.size() <= pipe_bytes + 64 * KiB);
    CHECK(in_order(bytes));
    char more;
    ::fcntl(pipe.read_end(), F_SETFL, O_NONBLOCK);
    CHECK(::read(pipe.read_end(), &more, 1) == 0);  // end of file, not a read_all that timed out
}

TEST_CASE("finish() gives up on what nobody reads after its limit, counts it, and later output is dropped") {
    ignore_broken_pipes();
    Pipe pipe;
    FdSink sink(pipe.write_end(), FdSink::Limits{.buffer_bytes = 256 * KiB, .flush_limit = 200ms});
    write_counting(sink, 1 * MiB);
    auto const start = Clock::now();
    sink.finish();
    auto const took = Clock::now() - start;
    CHECK(took >= 190ms);
    CHECK(took < 1s);
    // Only what the pipe took was written.
    CHECK(sink.dropped_bytes() >= 1 * MiB - pipe.capacity());
    CHECK(sink.drop_reason() == not_read);
    std::uint64_t const dropped = sink.dropped_bytes();
    sink.write(as_bytes("late"));
    CHECK(sink.dropped_bytes() == dropped + 4);
}

TEST_CASE("Output lost both to a reader that stopped and to a broken pipe says both, with counts") {
    ignore_broken_pipes();
    Pipe pipe;
    FdSink sink(pipe.write_end(), FdSink::Limits{.buffer_bytes = 256 * KiB});
    write_counting(sink, 1 * MiB);
    std::uint64_t const not_taken = sink.dropped_bytes();
    REQUIRE(not_taken > 0);
    pipe.close_read_end();  // the blocked write and the rest held fail with EPIPE
    sink.finish();
    std::uint64_t const failed = sink.dropped_bytes() - not_taken;
    CHECK(failed > 0);
    CHECK(sink.last_error() == EPIPE);
    CHECK(sink.drop_reason() ==
          fmt::format("{} bytes: {}; {} bytes: {}", not_taken, not_read, failed, std::strerror(EPIPE)));
}

TEST_CASE("The writer thread blocks every signal: process signals belong to the VMM thread") {
    sigset_t none, previous;
    sigemptyset(&none);
    REQUIRE(::pthread_sigmask(SIG_SETMASK, &none, &previous) == 0);  // nothing to inherit
    Pipe pipe;
    FdSink sink(pipe.write_end());
    write_counting(sink, 2 * pipe.capacity());  // more than the pipe takes: the writer starts
    std::optional<std::uint64_t> const blocked = blocked_signals_of("fd-sink");
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    ignore_broken_pipes();
    pipe.close_read_end();  // the rest fails at once: the sink's end does not wait for a reader
    REQUIRE(blocked);
    for (int sig :
         {SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGPIPE, SIGCHLD, SIGALRM, SIGWINCH, SIGRTMIN + 1})
        CHECK((*blocked >> (sig - 1) & 1) == 1);
}

}  // namespace
}  // namespace kvmlet
