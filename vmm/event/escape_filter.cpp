#include "vmm/event/escape_filter.hpp"

namespace kvmlet {

EscapeFilter::Output EscapeFilter::feed(std::span<std::byte const> input) {
    Output out;
    out.to_guest.reserve(input.size());
    for (std::byte b : input) {
        if (!pending_escape_) {
            if (b == escape)
                pending_escape_ = true;
            else
                out.to_guest.push_back(b);
            continue;
        }
        pending_escape_ = false;
        if (b == quit_key) {
            out.quit = true;
            return out;  // the rest of the input is not for the guest
        }
        out.to_guest.push_back(escape);
        if (b != escape) out.to_guest.push_back(b);
    }
    return out;
}

}  // namespace kvmlet
