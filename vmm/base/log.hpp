#pragma once
// Logging to stderr, one line per message, prefixed "kvmlet: ". The guest can reach some log
// calls; those go through a RateLimit so a noisy guest cannot flood the host's stderr.
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace kvmlet::log {

enum class Level : int { error = 0, warn = 1, info = 2, debug = 3 };

void set_level(Level level) noexcept;
Level level() noexcept;
bool enabled(Level level) noexcept;
// One line: "kvmlet: ", the level ("error: ", "warning: ", "debug: "; none for info), the origin
// when asked for ("vmm/machine/machine.cpp:123: "), the message. `origin` is the call site of
// error()..debug(); write() called directly has none.
// Where a log call was written. std::source_location would do, but clang 14 (the fuzz build) has
// no __builtin_source_location for libstdc++'s; __builtin_FILE/__builtin_LINE, as default
// arguments, name the caller in GCC and clang alike.
struct Origin {
    static constexpr Origin here(char const* file = __builtin_FILE(),
                                 unsigned line = __builtin_LINE()) noexcept {
        return {file, line};
    }
    char const* file;
    unsigned line;
};

void write(Level level, std::string_view message, Origin const* origin = nullptr) noexcept;
// Where log lines go: stderr until told otherwise (Firecracker's --log-path). The fd stays open.
void set_output(int fd) noexcept;

// What lines show and which are written (Firecracker's logger settings). kvmlet's own default
// shows levels, no origins, every module.
struct Decoration {
    bool show_level = true;    // warning/debug markers (errors always say "error: ")
    bool show_origin = false;  // Firecracker's show_log_origin: source file (from the source root), line
    // Firecracker's module: only lines from source files under this path (from the source root:
    // "devices/virtio/net", "vmm/api"); errors, and lines without an origin, are always written.
    std::optional<std::string> module;
};
void set_decoration(Decoration decoration);
// The path of a source file from the source root ("vmm/base/log.cpp"); as given if outside it.
std::string_view source_path(std::string_view file) noexcept;

// A format string with the place it was written: what error()..debug() take, so each line can
// name its origin. Checked at compile time like fmt::format_string.
template <class... Args>
struct FormatAt {
    template <class S>
    consteval FormatAt(S const& text, Origin where = Origin::here()) : text(text), where(where) {}
    fmt::format_string<Args...> text;
    Origin where;
};
template <class... Args>
using Format = FormatAt<std::type_identity_t<Args>...>;

template <class... Args>
void error(Format<Args...> f, Args&&... args) {
    write(Level::error, fmt::format(f.text, std::forward<Args>(args)...), &f.where);
}
template <class... Args>
void warn(Format<Args...> f, Args&&... args) {
    if (enabled(Level::warn)) write(Level::warn, fmt::format(f.text, std::forward<Args>(args)...), &f.where);
}
template <class... Args>
void info(Format<Args...> f, Args&&... args) {
    if (enabled(Level::info)) write(Level::info, fmt::format(f.text, std::forward<Args>(args)...), &f.where);
}
template <class... Args>
void debug(Format<Args...> f, Args&&... args) {
    if (enabled(Level::debug))
        write(Level::debug, fmt::format(f.text, std::forward<Args>(args)...), &f.where);
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
