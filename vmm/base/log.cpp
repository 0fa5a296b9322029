#include "vmm/base/log.hpp"

#include <unistd.h>

#include <string>

namespace kvmlet::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::info)};
std::atomic<int> g_output{STDERR_FILENO};

std::int64_t now_ms() noexcept {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void set_level(Level level) noexcept {
    g_level.store(static_cast<int>(level));
}
Level level() noexcept {
    return static_cast<Level>(g_level.load());
}
bool enabled(Level l) noexcept {
    return static_cast<int>(l) <= g_level.load(std::memory_order_relaxed);
}

void write(Level l, std::string_view message) noexcept {
    static constexpr std::string_view prefixes[] = {
        "kvmlet: error: ", "kvmlet: warning: ", "kvmlet: ", "kvmlet: debug: "};
    try {
        std::string line{prefixes[static_cast<int>(l)]};
        line.append(message);
        line.push_back('\n');
        // One write(2) per line so lines from different threads do not interleave.
        std::size_t done = 0;
        while (done < line.size()) {
            ssize_t n =
                ::write(g_output.load(std::memory_order_relaxed), line.data() + done, line.size() - done);
            if (n <= 0) break;
            done += static_cast<std::size_t>(n);
        }
    } catch (...) {
        // Out of memory while logging: nothing sensible left to do.
    }
}

void set_output(int fd) noexcept {
    g_output.store(fd);
}

bool RateLimit::allow() noexcept {
    std::int64_t now = now_ms();
    std::int64_t start = window_start_ms_.load(std::memory_order_relaxed);
    if (now - start >= period_ms_ &&
        window_start_ms_.compare_exchange_strong(start, now, std::memory_order_relaxed)) {
        used_.store(0, std::memory_order_relaxed);
    }
    if (used_.fetch_add(1, std::memory_order_relaxed) < burst_) return true;
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return false;
}

}  // namespace kvmlet::log
