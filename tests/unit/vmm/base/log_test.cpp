#include "vmm/base/log.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
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

}  // namespace kvmlet::log
