#include "vmm/event/process_signals.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "vmm/base/error.hpp"

namespace kvmlet {
namespace {

constexpr std::array stop_signals{SIGINT, SIGTERM, SIGHUP};
constexpr int dump_signal = SIGUSR2;

// Read by the handlers, so plain globals: lock-free atomics and file descriptors are all a
// handler may touch.
std::atomic<int> g_stop_signal{0};
std::atomic<int> g_stop_count{0};
int g_stop_fd = -1;
int g_again_fd = -1;
int g_dump_fd = -1;
bool g_installed = false;
std::array<struct sigaction, stop_signals.size() + 1> g_previous{};

static_assert(std::atomic<int>::is_always_lock_free);

void ring(int fd) noexcept {
    int saved = errno;
    std::uint64_t one = 1;
    // Only fails when the counter is full, and then it is readable anyway.
    [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
    errno = saved;
}

void on_stop_signal(int sig) {
    int none = 0;
    g_stop_signal.compare_exchange_strong(none, sig);
    ring(g_stop_fd);
    if (g_stop_count.fetch_add(1) >= 1) ring(g_again_fd);
}

void on_dump_signal(int) {
    ring(g_dump_fd);
}

int make_eventfd() {
    int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) throw system_error("eventfd");
    return fd;
}

void install(int sig, void (*handler)(int), struct sigaction* previous) {
    struct sigaction action {};
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (::sigaction(sig, &action, previous) != 0) throw system_error(fmt::format("sigaction({})", sig));
}

}  // namespace

ProcessSignals::ProcessSignals() {
    if (g_installed) throw Error("process signals: already installed");
    g_stop_fd = make_eventfd();
    g_dump_fd = make_eventfd();
    g_again_fd = make_eventfd();
    g_stop_signal.store(0);
    g_stop_count.store(0);
    for (std::size_t i = 0; i < stop_signals.size(); ++i)
        install(stop_signals[i], on_stop_signal, &g_previous[i]);
    install(dump_signal, on_dump_signal, &g_previous.back());
    g_installed = true;
}

ProcessSignals::~ProcessSignals() {
    for (std::size_t i = 0; i < stop_signals.size(); ++i)
        ::sigaction(stop_signals[i], &g_previous[i], nullptr);
    ::sigaction(dump_signal, &g_previous.back(), nullptr);
    ::close(g_stop_fd);
    ::close(g_dump_fd);
    ::close(g_again_fd);
    g_stop_fd = g_dump_fd = g_again_fd = -1;
    g_installed = false;
}

int ProcessSignals::stop_signal() const noexcept {
    return g_stop_signal.load();
}

StopReason ProcessSignals::stop_reason() const {
    return StopReason{StopKind::signal, fmt::format("received {}", ::strsignal(stop_signal()))};
}

int ProcessSignals::stop_fd() const noexcept {
    return g_stop_fd;
}
int ProcessSignals::again_fd() const noexcept {
    return g_again_fd;
}
int ProcessSignals::dump_fd() const noexcept {
    return g_dump_fd;
}

bool ProcessSignals::take_dump_request() noexcept {
    std::uint64_t count = 0;
    return ::read(g_dump_fd, &count, sizeof count) == sizeof count && count > 0;
}

void ignore_broken_pipes() {
    struct sigaction action {};
    action.sa_handler = SIG_IGN;
    sigemptyset(&action.sa_mask);
    if (::sigaction(SIGPIPE, &action, nullptr) != 0) throw system_error("sigaction(SIGPIPE)");
}

}  // namespace kvmlet
