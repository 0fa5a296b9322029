#pragma once
// MMDS version 2 session tokens (Firecracker's docs/mmds/mmds-user-guide.md, "Version 2"): PUT
// /latest/api/token with a lifetime of 1 to 21600 s issues one; a GET must show an unexpired one.
// A token is 32 random bytes from getrandom(2), in hex, remembered with its expiry. One authority
// per microVM, shared by its MMDS interfaces (all on the VMM thread; the lock is for safety, not
// speed). At most max_tokens live at once: issuing one more forgets the expired ones and, if
// none has expired, the one closest to expiry, so a guest cannot grow the table.
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace kvmlet::virtio::net::mmds {

using Clock = std::chrono::steady_clock;

class TokenAuthority {
public:
    static constexpr std::size_t max_tokens = 1024;
    static constexpr std::uint32_t min_ttl_seconds = 1;
    static constexpr std::uint32_t max_ttl_seconds = 21600;
    static constexpr std::size_t token_bytes = 32;

    // A new token valid for `ttl_seconds` (checked by the caller) from `now`; nullopt when no
    // randomness could be had.
    std::optional<std::string> issue(std::uint32_t ttl_seconds, Clock::time_point now);
    bool valid(std::string_view token, Clock::time_point now) const;
    std::size_t size() const;

private:
    void make_room(Clock::time_point now);

    mutable std::mutex mutex_;
    std::map<std::string, Clock::time_point, std::less<>> expiry_;
};

}  // namespace kvmlet::virtio::net::mmds
