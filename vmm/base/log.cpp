#include "vmm/base/log.hpp"

#include <unistd.h>

#include <memory>
#include <mutex>
#include <string>

namespace kvmlet::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::info)};
std::atomic<int> g_output{STDERR_FILENO};
// nullptr: kvmlet's defaults. Swapped whole under the mutex; a line copies the pointer.
std::mutex g_decoration_mutex;
std::shared_ptr<Decoration const> g_decoration;

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

std::string_view source_path(std::string_view file) noexcept {
    // This file is <root>/vmm/base/log.cpp: the root is what precedes that.
    constexpr std::string_view self = Origin::here().file;
    constexpr std::string_view tail = "vmm/base/log.cpp";
    static_assert(self.ends_with(tail));
    constexpr std::string_view root = self.substr(0, self.size() - tail.size());
    return file.starts_with(root) ? file.substr(root.size()) : file;
}

void set_decoration(Decoration decoration) {
    std::lock_guard lock(g_decoration_mutex);
    g_decoration = std::make_shared<Decoration const>(std::move(decoration));
}

void write(Level l, std::string_view message, Origin const* origin) noexcept {
    static constexpr std::string_view levels[] = {"error: ", "warning: ", "", "debug: "};
    try {
        std::shared_ptr<Decoration const> decoration;
        {
            std::lock_guard lock(g_decoration_mutex);
            decoration = g_decoration;
        }
        std::string_view const file = origin ? source_path(origin->file) : std::string_view{};
        // Lines without an origin (write() called directly: dumps asked for) are always written.
        if (decoration && decoration->module && l != Level::error && origin &&
            !file.starts_with(*decoration->module))
            return;
        std::string line{"kvmlet: "};
        // An error says so whatever show_level is: it is kvmlet's one line on why it stopped.
        if (!decoration || decoration->show_level || l == Level::error)
            line.append(levels[static_cast<int>(l)]);
        if (decoration && decoration->show_origin && origin)
            line.append(fmt::format("{}:{}: ", file, origin->line));
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
