#include "vmm/event/fd_sink.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <system_error>

#include "vmm/base/timeline.hpp"
#include "vmm/base/unique_fd.hpp"
#include "vmm/security/seccomp.hpp"

namespace kvmlet {
namespace {

// The most one write(2) takes from the buffer: a blocking write to a pipe returns only when all of
// it is in, and only then is its space free for write() again.
constexpr std::size_t max_write_bytes = 64 * 1024;
// How long the writer waits for a descriptor someone else made non-blocking (the terminal's file
// description is shared) before it tries again, and looks whether it was left behind.
constexpr int again_poll_ms = 100;

// One write(2): the bytes written, 0 to try again, or -errno.
ssize_t write_once(int fd, std::span<std::byte const> chunk) noexcept {
    ssize_t const n = ::write(fd, chunk.data(), chunk.size());
    if (n > 0) return n;
    if (n == 0) return -EIO;
    if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, again_poll_ms);
        return 0;
    }
    return errno == EINTR ? 0 : -errno;
}

// The caller's own try: one write that fails with EAGAIN instead of waiting (the descriptor's
// file description, shared with the terminal, stays blocking). The bytes written, 0 when it would
// have waited, -errno. Pipes and /dev/null support it; terminals and some files do not (EOPNOTSUPP).
ssize_t write_without_waiting(int fd, std::span<std::byte const> bytes) noexcept {
    iovec const iov{const_cast<std::byte*>(bytes.data()), bytes.size()};  // Safety: only read
    ssize_t const n = ::pwritev2(fd, &iov, 1, -1, RWF_NOWAIT);
    if (n >= 0) return n;
    return errno == EAGAIN || errno == EINTR ? 0 : -errno;
}

// A regular file: no reader can stall it, so the caller writes to it itself, at once and in full
// (blocking at worst for the disk, as any log write does). Output handed to the sink is then in the
// file before write() returns: a kvmlet killed right after loses none of it (durability.sh matches
// the guest's last words against its disk). Many file systems refuse RWF_NOWAIT for buffered
// writes (ext4 here: EOPNOTSUPP), which would send all output through the writer thread.
bool is_regular_file(int fd) noexcept {
    struct stat st {};
    return fd >= 0 && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

// Writes all of `bytes` with blocking write(2)s: 0, or -errno.
int write_all(int fd, std::span<std::byte const> bytes) noexcept {
    while (!bytes.empty()) {
        ssize_t const n = ::write(fd, bytes.data(), bytes.size());
        if (n > 0) {
            bytes = bytes.subspan(static_cast<std::size_t>(n));
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return n == 0 ? -EIO : -errno;
        }
    }
    return 0;
}

bool unsupported(ssize_t error) noexcept {
    return error == -EOPNOTSUPP || error == -EINVAL || error == -ENOSYS;
}

}  // namespace

struct FdSink::Shared {
    Shared(int source_fd, std::size_t buffer_bytes)
        : fd(::fcntl(source_fd, F_DUPFD_CLOEXEC, 0)),
          dup_error(fd.valid() ? 0 : errno),
          regular_file(is_regular_file(fd.get())),
          capacity(std::max<std::size_t>(buffer_bytes, 1)),
          buffer(new std::byte[capacity]) {}  // not zeroed: only the pages used cost memory

    std::size_t append(std::span<std::byte const> bytes) noexcept;
    void consume(std::size_t bytes) noexcept;
    void fail(std::size_t bytes, int error) noexcept {
        failed_bytes += bytes;
        last_error = error;
    }
    void run() noexcept;

    UniqueFd const fd;  // a duplicate: the writer may outlive the sink and the caller's descriptor
    int const dup_error;
    bool const regular_file;  // written by the caller itself, see is_regular_file()
    std::size_t const capacity;
    std::unique_ptr<std::byte[]> const buffer;

    std::mutex mutex;
    std::condition_variable wake;      // for the writer: output held, or finishing
    std::condition_variable finished;  // for finish(): the writer is done
    // Guarded by mutex. The output held is [head, head + size) modulo capacity; the writer writes
    // from its start without the lock, write() appends after its end.
    std::size_t head = 0;
    std::size_t size = 0;
    bool finishing = false;          // no more output: the writer exits once nothing is held
    bool left_behind = false;        // finish() gave up: the writer exits when its write(2) returns
    bool done = false;               // the writer exited
    bool direct = true;              // write_without_waiting works on fd
    std::uint64_t unread_bytes = 0;  // dropped: the buffer was full, or still held at the limit
    std::uint64_t failed_bytes = 0;  // dropped by write errors
    int last_error = 0;
};

std::size_t FdSink::Shared::append(std::span<std::byte const> bytes) noexcept {
    std::size_t const n = std::min(bytes.size(), capacity - size);
    std::size_t const tail = (head + size) % capacity;
    std::size_t const first = std::min(n, capacity - tail);
    std::memcpy(buffer.get() + tail, bytes.data(), first);
    std::memcpy(buffer.get(), bytes.data() + first, n - first);
    size += n;
    return n;
}

void FdSink::Shared::consume(std::size_t bytes) noexcept {
    size -= bytes;
    // Empty, the next output starts at the front: one write(2) for it, not two around the end.
    head = size == 0 ? 0 : (head + bytes) % capacity;
}

void FdSink::Shared::run() noexcept {
    security::confine(security::ThreadKind::sink);
    std::unique_lock lock(mutex);
    for (;;) {
        wake.wait(lock, [this] { return size > 0 || finishing; });
        if (size == 0 || left_behind) break;
        std::span<std::byte const> const chunk(buffer.get() + head,
                                               std::min({size, capacity - head, max_write_bytes}));
        lock.unlock();
        ssize_t const n = write_once(fd.get(), chunk);
        lock.lock();
        if (left_behind) break;  // finish() counted all it held as dropped
        if (n > 0) {
            consume(static_cast<std::size_t>(n));
        } else if (n < 0) {
            // Closed or broken output: the guest keeps running, this output is lost.
            consume(chunk.size());
            fail(chunk.size(), static_cast<int>(-n));
        }
    }
    done = true;
    finished.notify_all();
}

FdSink::FdSink(int fd, Limits limits)
    : shared_(std::make_shared<Shared>(fd, limits.buffer_bytes)), flush_limit_(limits.flush_limit) {}

FdSink::~FdSink() {
    finish();
}

void FdSink::write(std::span<std::byte const> bytes) noexcept {
    // Marked when the guest hands its first byte over, whenever a reader takes it.
    if (!wrote_anything_.exchange(true, std::memory_order_relaxed))
        process_timeline().mark(Phase::first_console_byte);
    Shared& s = *shared_;
    bool was_empty = false;
    {
        std::lock_guard lock(s.mutex);
        if (s.finishing) {
            s.unread_bytes += bytes.size();
            return;
        }
        if (!s.fd.valid()) return s.fail(bytes.size(), s.dup_error);
        if (s.regular_file) {
            if (int const error = write_all(s.fd.get(), bytes); error != 0) s.fail(bytes.size(), -error);
            return;
        }
        // Nothing held, so the writer is not in write(2): the caller may write itself, in order, and
        // leave the writer asleep (or not even started). What does not go now is held.
        if (s.size == 0 && s.direct) {
            ssize_t const n = write_without_waiting(s.fd.get(), bytes);
            if (n > 0)
                bytes = bytes.subspan(static_cast<std::size_t>(n));
            else if (unsupported(n))
                s.direct = false;
            else if (n < 0)
                return s.fail(bytes.size(), static_cast<int>(-n));
            if (bytes.empty()) return;
        }
        if (int const error = writer_.joinable() ? 0 : start_writer(); error != 0)
            return s.fail(bytes.size(), error);
        was_empty = s.size == 0;
        std::size_t const taken = s.append(bytes);
        s.unread_bytes += bytes.size() - taken;
    }
    // The writer sleeps only when nothing is held: one wake-up per burst of output, not per byte.
    if (was_empty) s.wake.notify_one();
}

void FdSink::start() noexcept {
    std::lock_guard lock(shared_->mutex);
    if (!writer_.joinable() && !shared_->finishing) start_writer();  // without it, write() tries again
}

int FdSink::start_writer() noexcept {
    // Process signals belong to the VMM thread. Blocked here, before the thread exists, so that
    // none lands on it before it could block them itself: it inherits this mask.
    sigset_t all, previous;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &previous);
    int error = 0;
    try {
        writer_ = std::thread([shared = shared_] { shared->run(); });
        ::pthread_setname_np(writer_.native_handle(), "fd-sink");
    } catch (std::system_error const& e) {
        error = e.code().value();
    } catch (std::exception const&) {
        error = ENOMEM;
    }
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return error;
}

void FdSink::finish() noexcept {
    Shared& s = *shared_;
    std::unique_lock lock(s.mutex);
    if (s.finishing) return;
    s.finishing = true;
    if (!writer_.joinable()) return;
    s.wake.notify_one();
    bool const drained = s.finished.wait_for(lock, flush_limit_, [&s] { return s.done; });
    if (!drained) {
        // The reader stopped: what is held will not be read. The writer may be blocked in write(2)
        // for good; joining it could hang kvmlet's exit, so it is left to end on its own.
        s.left_behind = true;
        s.unread_bytes += s.size;
        s.size = 0;
    }
    lock.unlock();
    if (drained)
        writer_.join();
    else
        writer_.detach();
}

std::uint64_t FdSink::dropped_bytes() const noexcept {
    std::lock_guard lock(shared_->mutex);
    return shared_->unread_bytes + shared_->failed_bytes;
}

int FdSink::last_error() const noexcept {
    std::lock_guard lock(shared_->mutex);
    return shared_->last_error;
}

std::string FdSink::drop_reason() const {
    std::lock_guard lock(shared_->mutex);
    Shared const& s = *shared_;
    constexpr std::string_view unread = "the reader stopped reading or fell behind";
    if (s.failed_bytes == 0) return std::string(unread);
    if (s.unread_bytes == 0) return std::strerror(s.last_error);
    return fmt::format("{} bytes: {}; {} bytes: {}", s.unread_bytes, unread, s.failed_bytes,
                       std::strerror(s.last_error));
}

}  // namespace kvmlet
