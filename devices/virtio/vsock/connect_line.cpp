#include "devices/virtio/vsock/connect_line.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace kvmlet::virtio::vsock {
namespace {

bool blank(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

std::string_view skip_blanks(std::string_view s) {
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    return s;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

}  // namespace

std::optional<std::uint32_t> parse_connect_line(std::string_view line) noexcept {
    constexpr std::string_view word = "connect";
    if (line.size() > max_connect_line || !line.ends_with('\n')) return std::nullopt;
    line.remove_suffix(1);
    line = skip_blanks(line);
    if (line.size() < word.size() || !equal_ignoring_case(line.substr(0, word.size()), word))
        return std::nullopt;
    line.remove_prefix(word.size());
    if (line.empty() || !blank(line.front())) return std::nullopt;
    line = skip_blanks(line);
    std::uint32_t port = 0;
    auto const [end, ec] = std::from_chars(line.data(), line.data() + line.size(), port);
    if (ec != std::errc{} || end == line.data()) return std::nullopt;
    if (!skip_blanks(line.substr(static_cast<std::size_t>(end - line.data()))).empty()) return std::nullopt;
    return port;
}

std::string ok_line(std::uint32_t host_port) {
    return fmt::format("OK {}\n", host_port);
}

}  // namespace kvmlet::virtio::vsock
