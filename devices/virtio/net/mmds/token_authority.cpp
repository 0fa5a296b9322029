#include "devices/virtio/net/mmds/token_authority.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>

namespace kvmlet::virtio::net::mmds {

std::optional<std::string> TokenAuthority::issue(std::uint32_t ttl_seconds, Clock::time_point now) {
    std::array<unsigned char, token_bytes> random{};
    if (::getrandom(random.data(), random.size(), 0) != static_cast<ssize_t>(random.size()))
        return std::nullopt;
    static constexpr char hex[] = "0123456789abcdef";
    std::string token;
    token.reserve(2 * random.size());
    for (unsigned char b : random) {
        token += hex[b >> 4];
        token += hex[b & 0xf];
    }
    std::lock_guard lock(mutex_);
    make_room(now);
    expiry_[token] = now + std::chrono::seconds(ttl_seconds);
    return token;
}

void TokenAuthority::make_room(Clock::time_point now) {
    if (expiry_.size() < max_tokens) return;
    std::erase_if(expiry_, [&](auto const& entry) { return entry.second <= now; });
    if (expiry_.size() < max_tokens) return;
    auto soonest = std::min_element(expiry_.begin(), expiry_.end(),
                                    [](auto const& a, auto const& b) { return a.second < b.second; });
    expiry_.erase(soonest);
}

bool TokenAuthority::valid(std::string_view token, Clock::time_point now) const {
    std::lock_guard lock(mutex_);
    auto it = expiry_.find(token);
    return it != expiry_.end() && now < it->second;
}

std::size_t TokenAuthority::size() const {
    std::lock_guard lock(mutex_);
    return expiry_.size();
}

}  // namespace kvmlet::virtio::net::mmds
