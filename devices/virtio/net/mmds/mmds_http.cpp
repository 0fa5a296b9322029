#include "devices/virtio/net/mmds/mmds_http.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <optional>

namespace kvmlet::virtio::net::mmds {
namespace {

constexpr std::string_view crlf = "\r\n";
constexpr std::string_view token_path = "/latest/api/token";

bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               auto lower = [](char c) {
                   return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
               };
               return lower(x) == lower(y);
           });
}

bool contains_ignoring_case(std::string_view text, std::string_view word) noexcept {
    for (std::size_t i = 0; i + word.size() <= text.size(); ++i)
        if (equal_ignoring_case(text.substr(i, word.size()), word)) return true;
    return false;
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// RFC 9110 §5.6.2 token characters, for methods and header names.
bool is_token(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
}

// The headers MMDS looks at; nullopt members were absent.
struct Request {
    std::string_view method;
    std::string_view path;  // without a query
    bool http10 = false;
    std::optional<std::string_view> accept, token, ttl, connection, content_length;
    bool forwarded_for = false;
    bool transfer_encoding = false;
};

bool read_header(std::string_view line, Request& r) noexcept {
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) return false;
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim(line.substr(colon + 1));
    auto is = [&](std::string_view n) { return equal_ignoring_case(name, n); };
    if (is("Accept"))
        r.accept = value;
    else if (is("X-metadata-token") || is("X-aws-ec2-metadata-token"))
        r.token = value;
    else if (is("X-metadata-token-ttl-seconds") || is("X-aws-ec2-metadata-token-ttl-seconds"))
        r.ttl = value;
    else if (is("Connection"))
        r.connection = value;
    else if (is("Content-Length"))
        r.content_length = value;
    else if (is("X-Forwarded-For"))
        r.forwarded_for = true;
    else if (is("Transfer-Encoding"))
        r.transfer_encoding = true;
    return true;
}

// Bounded by the head's length: every pass consumes one line.
std::optional<Request> parse(std::string_view head) noexcept {
    std::size_t end = head.find(crlf);
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view line = head.substr(0, end);
    head.remove_prefix(end + crlf.size());
    Request r;
    std::size_t sp1 = line.find(' ');
    std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return std::nullopt;
    r.method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (!is_token(r.method) || target.empty() || target[0] != '/') return std::nullopt;
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return std::nullopt;
    r.http10 = version == "HTTP/1.0";
    r.path = target.substr(0, target.find('?'));
    while ((end = head.find(crlf)) != 0) {
        if (end == std::string_view::npos) return std::nullopt;
        if (!read_header(head.substr(0, end), r)) return std::nullopt;
        head.remove_prefix(end + crlf.size());
    }
    return r;
}

std::string_view reason(unsigned status) noexcept {
    switch (status) {
        case 200:
            return "OK";
        case 401:
            return "Unauthorized";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        default:
            return "Bad Request";
    }
}

HttpReply reply(unsigned status, std::string_view body, bool close, std::string_view type = "text/plain") {
    std::string out =
        fmt::format("HTTP/1.1 {} {}\r\nServer: kvmlet\r\nContent-Type: {}\r\nContent-Length: {}\r\n", status,
                    reason(status), type, body.size());
    if (status == 405) out += "Allow: GET, PUT\r\n";
    if (close) out += "Connection: close\r\n";
    out += crlf;
    out += body;
    return {std::move(out), close};
}

std::optional<std::uint32_t> ttl_seconds(std::string_view text) noexcept {
    std::uint32_t value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    if (value < TokenAuthority::min_ttl_seconds || value > TokenAuthority::max_ttl_seconds)
        return std::nullopt;
    return value;
}

HttpReply put_token(Request const& r, MmdsConfig const& config, Clock::time_point now, bool close) {
    if (r.path != token_path) return reply(400, "PUT is only for /latest/api/token.", close);
    if (r.forwarded_for) return reply(400, "Invalid header: X-Forwarded-For is not accepted.", close);
    if (!r.ttl) return reply(400, "Token time to live value not found.", close);
    auto ttl = ttl_seconds(*r.ttl);
    if (!ttl) return reply(400, "Invalid time to live value: use 1 to 21600 seconds.", close);
    auto token = config.tokens ? config.tokens->issue(*ttl, now) : std::nullopt;
    if (!token) return reply(500, "No token could be made.", close);
    return reply(200, *token, close);
}

HttpReply get(Request const& r, MmdsConfig const& config, Clock::time_point now, bool close) {
    bool token_valid = r.token && config.tokens && config.tokens->valid(*r.token, now);
    if (config.version == Version::v2 && !token_valid)
        return reply(401,
                     r.token ? "MMDS token not valid." : "No MMDS token provided. Use `X-metadata-token`.",
                     close);
    bool json = !config.imds_compat && r.accept && contains_ignoring_case(*r.accept, "application/json");
    if (!config.store) return reply(404, "Resource not found.", close);
    auto answer = config.store->lookup(r.path, json ? MmdsStore::Format::json : MmdsStore::Format::imds);
    switch (answer.status) {
        case MmdsStore::Answer::Status::ok:
            return reply(200, answer.body, close, json ? "application/json" : "text/plain");
        case MmdsStore::Answer::Status::not_found:
            return reply(404, "Resource not found.", close);
        case MmdsStore::Answer::Status::unsupported:
            return reply(501, "Cannot retrieve value. The value has an unsupported type.", close);
    }
    return reply(500, "", close);
}

}  // namespace

std::size_t request_head_end(std::string_view buffer) noexcept {
    std::size_t at = buffer.find("\r\n\r\n");
    return at == std::string_view::npos ? at : at + 4;
}

HttpReply request_too_large() {
    return reply(400, "Request too large.", true);
}

HttpReply answer_request(std::string_view head, MmdsConfig const& config, Clock::time_point now) {
    auto r = parse(head);
    if (!r) return reply(400, "Malformed request.", true);
    if (r->transfer_encoding || (r->content_length && *r->content_length != "0"))
        return reply(400, "MMDS requests have no body.", true);
    bool close = r->http10 || (r->connection && equal_ignoring_case(*r->connection, "close"));
    if (r->method == "GET") return get(*r, config, now, close);
    if (r->method == "PUT") return put_token(*r, config, now, close);
    return reply(405, "Only GET and PUT are allowed.", close);
}

}  // namespace kvmlet::virtio::net::mmds
