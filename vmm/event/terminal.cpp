#include "vmm/event/terminal.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <initializer_list>

namespace kvmlet {
namespace {

// Saved for the fatal-signal handler and atexit; only one RawTerminal is active at a time.
int g_fd = -1;
termios g_saved{};

void restore_saved() noexcept {
    if (g_fd >= 0) ::tcsetattr(g_fd, TCSANOW, &g_saved);
}

void restore_and_reraise(int sig) {
    restore_saved();  // tcsetattr is async-signal-safe
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

void install_fatal_handlers() {
    for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) {
        struct sigaction action {};
        action.sa_handler = restore_and_reraise;
        sigemptyset(&action.sa_mask);
        action.sa_flags = static_cast<int>(SA_RESETHAND);  // 0x80000000: the sign bit of sa_flags
        ::sigaction(sig, &action, nullptr);
    }
}

}  // namespace

RawTerminal::RawTerminal(int fd) : fd_(fd) {
    termios saved{};
    if (!::isatty(fd) || ::tcgetattr(fd, &saved) != 0) return;
    termios raw = saved;
    ::cfmakeraw(&raw);
    raw.c_oflag |= OPOST | ONLCR;  // keep host output (kvmlet's own messages) line-oriented
    g_fd = fd;
    g_saved = saved;
    install_fatal_handlers();
    std::atexit(restore_saved);
    active_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
}

RawTerminal::~RawTerminal() {
    if (!active_) return;
    ::tcsetattr(fd_, TCSANOW, &g_saved);
    g_fd = -1;
}

}  // namespace kvmlet
