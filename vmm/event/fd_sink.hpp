#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "devices/legacy/byte_sink.hpp"

namespace kvmlet {

// Writes device output to a file descriptor (stdout) without ever blocking its caller on a reader.
// A regular file is written at once, in full, by the caller (no reader can stall it). Otherwise write()
// writes what the descriptor takes at once (pwritev2 with RWF_NOWAIT, where the descriptor supports
// it: pipes, /dev/null) and copies the rest into a bounded buffer, which a writer thread of the
// sink's own writes out with blocking write(2)s (stdout is shared with the terminal and outlives
// kvmlet, so it is never made non-blocking). A guest must not stall the event loop or a vCPU with a
// stdout nobody reads (a stalled pipe, a stuck terminal): when the buffer is full, new output is
// dropped and counted. Write errors drop the output they meet, counted with their errno: a reader
// that went away (`kvmlet run ... | head`, EPIPE with SIGPIPE ignored) ends nothing. Output is
// written in the order it was handed over.
class FdSink : public ByteSink {
public:
    struct Limits {
        // Output held for a reader that is slow or stopped. 1 MiB is seconds of a chatty boot's
        // console and costs only the pages used (the buffer is not zeroed).
        std::size_t buffer_bytes = std::size_t{1} << 20;
        // How long finish() waits for the reader to take what is held. A reader that reads takes
        // a full buffer in milliseconds (a terminal at 10 MB/s: 0.1 s); one that stopped never
        // will, so waiting longer only delays the exit a SIGTERM asked for (hostile.sh allows 2 s).
        std::chrono::milliseconds flush_limit{1000};
    };

    // `fd` is duplicated; the caller keeps its own. If the duplicate cannot be made, all output
    // is dropped and counted with that errno. Throws only std::bad_alloc.
    explicit FdSink(int fd) : FdSink(fd, Limits{}) {}
    FdSink(int fd, Limits limits);
    FdSink(FdSink const&) = delete;
    FdSink& operator=(FdSink const&) = delete;
    ~FdSink() override;  // finish()

    void write(std::span<std::byte const> bytes) noexcept override;
    // Starts the writer thread now rather than when output is first held: a machine starts it
    // before the VMM thread confines itself, so the writer is never the child of a confined thread
    // (whose filter it would inherit; see vmm/security/seccomp.hpp).
    void start() noexcept;
    // Takes no more output (later writes are dropped and counted), writes out what is held for
    // at most Limits::flush_limit, then drops the rest. Never waits longer: a writer thread still
    // blocked in write(2) is left behind, detached, and exits when that write returns (the
    // process's exit ends it too). Call after the last writer stopped, before reading the counts.
    void finish() noexcept;

    bool wrote_anything() const noexcept { return wrote_anything_.load(std::memory_order_relaxed); }
    // Bytes of output lost, whatever the reason, and the errno of the last write error (0: none).
    std::uint64_t dropped_bytes() const noexcept;
    int last_error() const noexcept;
    // Why output was lost, for a log line: the write error's text ("Broken pipe"), that stdout was
    // not being read (the buffer was full, or still held output at finish()), or both with counts.
    std::string drop_reason() const;

private:
    struct Shared;
    int start_writer() noexcept;

    std::shared_ptr<Shared> shared_;  // shared with the writer thread, which may outlive the sink
    std::chrono::milliseconds flush_limit_;
    std::thread writer_;  // started by start() or when output is first held; guarded by shared_'s mutex
    std::atomic<bool> wrote_anything_{false};
};

}  // namespace kvmlet
