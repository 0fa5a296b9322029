#include "vmm/base/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace kvmlet::log {

using namespace std::chrono_literals;

TEST_CASE("a rate limit allows its burst, then suppresses and counts the rest") {
    RateLimit limit(3, std::chrono::hours(1));
    CHECK(limit.allow());
    CHECK(limit.allow());
    CHECK(limit.allow());
    CHECK(limit.suppressed() == 0);
    for (int i = 0; i < 5; ++i) CHECK_FALSE(limit.allow());
    CHECK(limit.suppressed() == 5);
}

TEST_CASE("a rate limit with a zero burst allows nothing within a period") {
    RateLimit limit(0, std::chrono::hours(1));
    CHECK_FALSE(limit.allow());
    CHECK_FALSE(limit.allow());
    CHECK(limit.suppressed() == 2);
}

TEST_CASE("a rate limit allows events again once its period has passed") {
    RateLimit limit(2, 200ms);
    CHECK(limit.allow());
    CHECK(limit.allow());
    CHECK_FALSE(limit.allow());
    std::this_thread::sleep_for(250ms);
    CHECK(limit.allow());
    CHECK(limit.suppressed() == 1);  // the count is not reset with the window
}

TEST_CASE("many threads sharing a rate limit get exactly its burst") {
    RateLimit limit(10, std::chrono::hours(1));
    std::atomic<int> allowed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 100; ++i)
                if (limit.allow()) ++allowed;
        });
    for (auto& t : threads) t.join();
    CHECK(allowed == 10);
    CHECK(limit.suppressed() == 390);
}

TEST_CASE("log levels enable their own level and the more severe ones") {
    Level saved = level();
    set_level(Level::warn);
    CHECK(level() == Level::warn);
    CHECK(enabled(Level::error));
    CHECK(enabled(Level::warn));
    CHECK_FALSE(enabled(Level::info));
    CHECK_FALSE(enabled(Level::debug));
    set_level(Level::debug);
    CHECK(enabled(Level::debug));
    set_level(saved);
}

namespace {

// The lines written while `body` runs, from a pipe standing in for stderr.
template <class Body>
std::string captured(Body body) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
    set_output(fds[1]);
    body();
    set_output(STDERR_FILENO);
    set_decoration({});
    std::string out(4096, '\0');
    ssize_t const n = ::read(fds[0], out.data(), out.size());
    ::close(fds[0]);
    ::close(fds[1]);
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
}

}  // namespace

TEST_CASE("log lines show the level by default, and no origin") {
    auto const out = captured([] {
        warn("disk {} is slow", 1);
        info("plain");
    });
    CHECK(out == "kvmlet: warning: disk 1 is slow\nkvmlet: plain\n");
}

TEST_CASE("Firecracker's logger settings: show_level off, show_log_origin on") {
    std::uint32_t line = 0;
    auto const out = captured([&] {
        set_decoration({.show_level = false, .show_origin = true, .module = std::nullopt});
        line = Origin::here().line + 1;
        warn("late");
        error("gone");
    });
    CHECK(out == fmt::format("kvmlet: tests/unit/vmm/base/log_test.cpp:{}: late\n"
                             "kvmlet: error: tests/unit/vmm/base/log_test.cpp:{}: gone\n",
                             line, line + 1));
}

TEST_CASE("the logger's module keeps lines from that source directory, errors and origin-less lines") {
    auto const out = captured([] {
        set_decoration({.show_level = true, .show_origin = false, .module = std::string("devices/")});
        warn("not from devices/");
        error("an error from anywhere");
        write(Level::info, "asked for");
    });
    CHECK(out == "kvmlet: error: an error from anywhere\nkvmlet: asked for\n");
    auto const kept = captured([] {
        set_decoration({.show_level = true, .show_origin = false, .module = std::string("tests/unit/vmm")});
        warn("from here");
    });
    CHECK(kept == "kvmlet: warning: from here\n");
}

TEST_CASE("source paths are given from the source root") {
    CHECK(source_path(Origin::here().file) == "tests/unit/vmm/base/log_test.cpp");
    CHECK(source_path("/elsewhere/x.cpp") == "/elsewhere/x.cpp");
}

}  // namespace kvmlet::log
