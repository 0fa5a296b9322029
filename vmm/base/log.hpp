#pragma once
// Logging to stderr, one line per message, prefixed "kvmlet: ". The guest can reach some log
// calls; those go through a RateLimit so a noisy guest cannot flood the host's stderr.
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace kvmlet::log {

enum class Level : int { error = 0, warn = 1, info = 2, debug = 3 };

void set_level(Level level) noexcept;
Level level() noexcept;
bool enabled(Level level) noexcept;
void write(Level level, std::string_view message) noexcept;
// Where log lines go: stderr until told otherwise (Firecracker's --log-path). The fd stays open.
void set_output(int fd) noexcept;

template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::warn)) write(Level::warn, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::info)) write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::debug)) write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}

// Allows up to `burst` events per `period`; thread-safe, lock-free. Counts what it suppressed.
class RateLimit {
public:
    constexpr RateLimit(std::uint32_t burst, std::chrono::milliseconds period) noexcept
        : burst_(burst), period_ms_(period.count()) {}
    bool allow() noexcept;
    std::uint64_t suppressed() const noexcept { return suppressed_.load(std::memory_order_relaxed); }

private:
    std::uint32_t burst_;
    std::int64_t period_ms_;
    std::atomic<std::uint32_t> used_{0};
    std::atomic<std::int64_t> window_start_ms_{0};
    std::atomic<std::uint64_t> suppressed_{0};
};

}  // namespace kvmlet::log
