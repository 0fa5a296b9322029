#pragma once
// The console escape, as in QEMU's character multiplexer: Ctrl-A x quits, Ctrl-A Ctrl-A sends one
// Ctrl-A to the guest; Ctrl-A followed by anything else sends both bytes.
#include <cstddef>
#include <span>
#include <vector>

namespace kvmlet {

class EscapeFilter {
public:
    static constexpr std::byte escape{0x01};  // Ctrl-A
    static constexpr std::byte quit_key{'x'};

    struct Output {
        std::vector<std::byte> to_guest;
        bool quit = false;
    };

    // Filters one chunk of input; an escape at the end of a chunk waits for the next one.
    Output feed(std::span<std::byte const> input);

private:
    bool pending_escape_ = false;
};

}  // namespace kvmlet
