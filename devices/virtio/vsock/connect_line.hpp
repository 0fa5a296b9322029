#pragma once
// The first thing a host process sends on the hybrid vsock socket (Firecracker's protocol):
// "CONNECT <port>\n", asking for a connection to the guest's port; kvmlet answers
// "OK <host port>\n" once the guest accepted, or closes the socket.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvmlet::virtio::vsock {

// A longer line is refused (Firecracker reads at most 32 bytes too).
inline constexpr std::size_t max_connect_line = 32;

// The port of a connect line (ending in '\n'): the word CONNECT in any case, blanks, a decimal
// port that fits 32 bits, optional blanks (a '\r' included). Nothing else.
std::optional<std::uint32_t> parse_connect_line(std::string_view line) noexcept;

// "OK <port>\n".
std::string ok_line(std::uint32_t host_port);

}  // namespace kvmlet::virtio::vsock
