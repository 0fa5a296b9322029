#pragma once
// Result<T>: a value or an error message, shaped like std::expected (C++23) so it can become an
// alias once the toolchain has it. Used by guest-reachable code, which never throws.
#include <string>
#include <utility>
#include <variant>

namespace kvmlet {

struct Unexpected {
    std::string message;
};

inline Unexpected unexpected(std::string message) {
    return Unexpected{std::move(message)};
}

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit like expected
    Result(Unexpected e) : v_(std::in_place_index<1>, std::move(e.message)) {}  // NOLINT

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & { return std::get<0>(v_); }
    T const& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    T const& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    T const* operator->() const { return &value(); }

    std::string const& error() const { return std::get<1>(v_); }

private:
    std::variant<T, std::string> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Unexpected e) : error_(std::move(e.message)), ok_(false) {}  // NOLINT

    bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    std::string const& error() const { return error_; }

private:
    std::string error_;
    bool ok_ = true;
};

}  // namespace kvmlet
