#include "vmm/event/escape_filter.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace kvmlet {
namespace {

constexpr char ctrl_a = '\x01';

EscapeFilter::Output feed(EscapeFilter& filter, std::string_view text) {
    return filter.feed(std::as_bytes(std::span(text.data(), text.size())));
}

std::string text(std::vector<std::byte> const& bytes) {
    std::string s;
    for (auto b : bytes) s.push_back(static_cast<char>(b));
    return s;
}

}  // namespace

TEST_CASE("input without an escape passes through unchanged") {
    EscapeFilter filter;
    auto out = feed(filter, "ls -l\r");
    CHECK(text(out.to_guest) == "ls -l\r");
    CHECK_FALSE(out.quit);
}

TEST_CASE("Ctrl-A x quits and drops the rest of the input") {
    EscapeFilter filter;
    auto out = feed(filter, std::string("ab") + ctrl_a + "xcd");
    CHECK(out.quit);
    CHECK(text(out.to_guest) == "ab");
}

TEST_CASE("Ctrl-A Ctrl-A sends one Ctrl-A to the guest") {
    EscapeFilter filter;
    auto out = feed(filter, std::string("a") + ctrl_a + ctrl_a + "b");
    CHECK_FALSE(out.quit);
    CHECK(text(out.to_guest) == std::string("a") + ctrl_a + "b");
}

TEST_CASE("Ctrl-A followed by another key sends both bytes") {
    EscapeFilter filter;
    auto out = feed(filter, std::string(1, ctrl_a) + "c");
    CHECK_FALSE(out.quit);
    CHECK(text(out.to_guest) == std::string(1, ctrl_a) + "c");
}

TEST_CASE("Ctrl-A followed by a capital X does not quit") {
    EscapeFilter filter;
    auto out = feed(filter, std::string(1, ctrl_a) + "X");
    CHECK_FALSE(out.quit);
    CHECK(text(out.to_guest) == std::string(1, ctrl_a) + "X");
}

TEST_CASE("an escape split across two chunks is held back, then quits") {
    EscapeFilter filter;
    auto first = feed(filter, std::string("ab") + ctrl_a);
    CHECK(text(first.to_guest) == "ab");
    CHECK_FALSE(first.quit);
    auto second = feed(filter, "xyz");
    CHECK(second.quit);
    CHECK(second.to_guest.empty());
}

TEST_CASE("an escape split across two chunks followed by another key sends both bytes") {
    EscapeFilter filter;
    auto first = feed(filter, std::string(1, ctrl_a));
    CHECK(first.to_guest.empty());
    auto second = feed(filter, "q");
    CHECK_FALSE(second.quit);
    CHECK(text(second.to_guest) == std::string(1, ctrl_a) + "q");
    // The escape was consumed: a plain x afterwards is just an x.
    auto third = feed(filter, "x");
    CHECK_FALSE(third.quit);
    CHECK(text(third.to_guest) == "x");
}

TEST_CASE("an empty chunk keeps a pending escape pending") {
    EscapeFilter filter;
    (void)feed(filter, std::string(1, ctrl_a));
    auto empty = feed(filter, "");
    CHECK(empty.to_guest.empty());
    CHECK_FALSE(empty.quit);
    CHECK(feed(filter, "x").quit);
}

TEST_CASE("a doubled Ctrl-A does not leave an escape pending") {
    EscapeFilter filter;
    auto out = feed(filter, std::string(2, ctrl_a) + "x");
    CHECK_FALSE(out.quit);
    CHECK(text(out.to_guest) == std::string(1, ctrl_a) + "x");
}

}  // namespace kvmlet
