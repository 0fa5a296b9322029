#pragma once
// The HTTP/1.1 side of MMDS (Firecracker's docs/mmds/mmds-user-guide.md): one request head in,
// one whole response out. Requests have no body (a Content-Length other than 0 or any
// Transfer-Encoding is a 400); the head is at most what the TCP receive buffer holds.
//   GET <path>               the store's value at path: 200, 404 when missing, 501 for an IMDS
//                            answer of a value neither string nor object; V2 needs a valid
//                            X-metadata-token (or X-aws-ec2-metadata-token), else 401
//   PUT /latest/api/token    X-metadata-token-ttl-seconds (or X-aws-ec2-...) 1..21600: 200 and a
//                            token; 400 without it, out of range, or with X-Forwarded-For
//   other methods            405 with Allow: GET, PUT
//   anything malformed       400, and the connection closes
#include <cstddef>
#include <string>
#include <string_view>

#include "devices/virtio/net/mmds/mmds_config.hpp"

namespace kvmlet::virtio::net::mmds {

struct HttpReply {
    std::string bytes;   // status line, headers and body
    bool close = false;  // the connection closes after it (Connection: close sent)
};

// Where the head of the first request in `buffer` ends (just after its blank line), or npos.
std::size_t request_head_end(std::string_view buffer) noexcept;

// Answers the request whose head is `head` (through its blank line).
HttpReply answer_request(std::string_view head, MmdsConfig const& config, Clock::time_point now);

// The answer to a request head that does not fit the receive buffer.
HttpReply request_too_large();

}  // namespace kvmlet::virtio::net::mmds
