#pragma once
// Puts a TTY into raw mode for the life of the object and restores it on every exit path: normal
// return, exceptions (destructor), and fatal signals (a handler restores, then re-raises).
#include <termios.h>

namespace kvmlet {

class RawTerminal {
public:
    explicit RawTerminal(int fd);  // no-op when fd is not a TTY
    RawTerminal(RawTerminal const&) = delete;
    RawTerminal& operator=(RawTerminal const&) = delete;
    ~RawTerminal();

    bool active() const noexcept { return active_; }

private:
    int fd_;
    bool active_ = false;
};

}  // namespace kvmlet
