#include "vmm/base/result.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <string>

namespace kvmlet {
namespace {

Result<int> parse_digit(char c) {
    if (c < '0' || c > '9') return unexpected(std::string("not a digit: ") + c);
    return c - '0';
}

Result<void> check_even(int n) {
    if (n % 2 != 0) return unexpected("odd");
    return {};
}

}  // namespace

TEST_CASE("a result made from a value holds that value") {
    auto r = parse_digit('7');
    REQUIRE(r.has_value());
    CHECK(static_cast<bool>(r));
    CHECK(r.value() == 7);
    CHECK(*r == 7);
}

TEST_CASE("a result made from unexpected holds the error message and no value") {
    auto r = parse_digit('x');
    CHECK_FALSE(r.has_value());
    CHECK_FALSE(static_cast<bool>(r));
    CHECK(r.error() == "not a digit: x");
    CHECK_THROWS_AS(r.value(), std::bad_variant_access);
}

TEST_CASE("a result's value can be changed and reached through the arrow operator") {
    Result<std::string> r = std::string("abc");
    CHECK(r->size() == 3);
    r.value() += "d";
    *r += "e";
    CHECK(*r == "abcde");
}

TEST_CASE("a result can hold a move-only value and give it up") {
    Result<std::unique_ptr<int>> r = std::make_unique<int>(42);
    REQUIRE(r);
    std::unique_ptr<int> p = std::move(r).value();
    REQUIRE(p);
    CHECK(*p == 42);
}

TEST_CASE("a string result tells a value from an error") {
    Result<std::string> ok = std::string("fine");
    Result<std::string> bad = unexpected("fine");
    CHECK(ok.has_value());
    CHECK(ok.value() == "fine");
    CHECK_FALSE(bad.has_value());
    CHECK(bad.error() == "fine");
}

TEST_CASE("a void result is a success by default and an error from unexpected") {
    auto ok = check_even(4);
    CHECK(ok.has_value());
    CHECK(static_cast<bool>(ok));
    CHECK(ok.error().empty());

    auto bad = check_even(3);
    CHECK_FALSE(bad.has_value());
    CHECK_FALSE(static_cast<bool>(bad));
    CHECK(bad.error() == "odd");
}

}  // namespace kvmlet
