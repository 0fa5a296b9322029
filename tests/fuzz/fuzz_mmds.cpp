// Fuzz target: the MMDS stack of a virtio-net interface (devices/virtio/net/mmds/), fed the frames
// a guest transmits. Raw frames reach every length and header check; built segments (checksums
// right, sequence numbers near what the stack expects, HTTP requests from a small dictionary, the
// last token MMDS handed out) get through the handshake into TCP states and HTTP answers. Checks
// the stack's bounds and that every frame it makes is well formed.
//
// Input: u8 config (bit 0 V2, bit 1 imds_compat), then ops, an op byte each:
//   op % 6 == 0  raw frame: u16 length (% 2048), the bytes; op bit 3: fix the IPv4 and TCP
//                checksums first; op bit 4: the virtio header says NEEDS_CSUM
//   op % 6 == 1  built TCP segment: u8 port (40000 + % 20), u8 flags, i8 seq and ack offsets
//                from what this port sent and received, u16 window, u8 options choice,
//                u8 payload choice (a dictionary request, or u8 length and bytes)
//   op % 6 == 2  the guest reads up to u8 frames
//   op % 6 == 3  time passes: u16 seconds
//   op % 6 == 4  ARP request: u8 variant (target address, operation, lengths)
//   op % 6 == 5  the API replaces the store (u8 choice), or (choice bit 7) the device resets
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "devices/virtio/net/mmds/mmds_stack.hpp"
#include "devices/virtio/net/mmds/packet_spec.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace kvmlet::fuzz {
namespace {

namespace mmds = virtio::net::mmds;
using mmds::load16;
using mmds::load32;
using mmds::store16;
using mmds::store32;

constexpr int max_ops = 256;
constexpr std::uint32_t guest_ip = 0xa9fe0102;
constexpr std::uint32_t mmds_ip = 0xa9fea9fe;

struct PortState {
    std::uint32_t guest_next = 1000;  // the guest's next sequence number
    std::uint32_t mmds_next = 0;      // what MMDS sent up to
};

struct Fuzz {
    mmds::Clock::time_point now{std::chrono::hours(1)};
    std::unique_ptr<mmds::MmdsStack> stack;
    std::shared_ptr<mmds::MmdsStore> store = std::make_shared<mmds::MmdsStore>();
    std::map<std::uint16_t, PortState> ports;
    std::string token = "none";
};

void fix_checksums(std::vector<std::byte>& f) {
    if (f.size() < 34 || load16(f, 12) != 0x0800) return;
    std::span<std::byte> ip = std::span(f).subspan(14);
    std::size_t const header = (std::to_integer<std::size_t>(ip[0]) & 0xf) * 4;
    std::size_t const total = load16(ip, 2);
    if (header < 20 || header > total || total > ip.size()) return;
    store16(ip, 10, 0);
    store16(ip, 10, mmds::checksum_of(mmds::ones_sum(ip.first(header))));
    auto tcp = ip.subspan(header, total - header);
    if (tcp.size() < 20) return;
    store16(tcp, 16, 0);
    store16(tcp, 16,
            mmds::checksum_of(
                mmds::ones_sum(tcp, mmds::pseudo_header_sum(load32(ip, 12), load32(ip, 16), tcp.size()))));
}

std::vector<std::byte> frame_around(std::uint16_t type, std::size_t payload) {
    std::vector<std::byte> f(14 + payload);
    for (std::size_t i = 0; i < 6; ++i) f[i] = std::byte{0xff};
    f[6] = std::byte{0x06};
    f[11] = std::byte{0x02};
    store16(f, 12, type);
    return f;
}

constexpr std::array<char const*, 8> requests{
    "GET /latest/meta-data/ HTTP/1.1\r\n\r\n",
    "GET /latest/meta-data/ami-id HTTP/1.1\r\nAccept: application/json\r\n\r\n",
    "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\n\r\n",
    "GET /latest HTTP/1.1\r\nX-metadata-token: {token}\r\nConnection: close\r\n\r\n",
    "GET /latest/meta-data/list/1 HTTP/1.0\r\n\r\n",
    "POST / HTTP/1.1\r\n\r\n",
    "GET /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    "GET /latest/meta-data/",  // the rest comes later, or never
};

std::string payload(Fuzz& f, ByteReader& in) {
    auto const choice = in.take<std::uint8_t>();
    if (choice < 128) {
        std::string r = requests[choice % requests.size()];
        if (auto at = r.find("{token}"); at != std::string::npos) r.replace(at, 7, f.token);
        return choice & 64 ? r.substr(0, r.size() / 2) : r;
    }
    auto const bytes = in.take_bytes(in.take<std::uint8_t>());
    return {reinterpret_cast<char const*>(bytes.data()), bytes.size()};
}

void built_segment(Fuzz& f, ByteReader& in) {
    auto const port = static_cast<std::uint16_t>(40000 + in.take<std::uint8_t>() % 20);
    auto const flags = in.take<std::uint8_t>();
    auto const seq_offset = in.take<std::int8_t>();
    auto const ack_offset = in.take<std::int8_t>();
    auto const window = in.take<std::uint16_t>();
    auto const options_choice = in.take<std::uint8_t>();
    std::string const data = payload(f, in);
    std::vector<std::uint8_t> options;
    if (options_choice % 4 == 1)
        options = {2, 4, static_cast<std::uint8_t>(options_choice >> 4), options_choice};
    if (options_choice % 4 == 2) options = {1, 1, 8, options_choice};
    if (options_choice % 4 == 3) options = {3, 3, 7, 0};  // window scale, ignored
    PortState& p = f.ports[port];
    std::size_t const header = 20 + options.size();
    auto frame = frame_around(0x0800, 20 + header + data.size());
    std::span<std::byte> ip = std::span(frame).subspan(14);
    ip[0] = std::byte{0x45};
    store16(ip, 2, static_cast<std::uint16_t>(ip.size()));
    ip[8] = std::byte{64};
    ip[9] = std::byte{6};
    store32(ip, 12, guest_ip);
    store32(ip, 16, mmds_ip);
    auto tcp = ip.subspan(20);
    store16(tcp, 0, port);
    store16(tcp, 2, 80);
    store32(tcp, 4, p.guest_next + static_cast<std::uint32_t>(seq_offset));
    store32(tcp, 8, p.mmds_next + static_cast<std::uint32_t>(ack_offset));
    tcp[12] = std::byte{static_cast<std::uint8_t>((header / 4) << 4)};
    tcp[13] = std::byte{flags};
    store16(tcp, 14, window);
    for (std::size_t i = 0; i < options.size(); ++i) tcp[20 + i] = std::byte{options[i]};
    std::transform(data.begin(), data.end(), tcp.begin() + static_cast<std::ptrdiff_t>(header),
                   [](char c) { return static_cast<std::byte>(c); });
    fix_checksums(frame);
    if (seq_offset == 0) p.guest_next += static_cast<std::uint32_t>(data.size()) + ((flags & 3) ? 1u : 0u);
    (void)f.stack->handle_frame(frame, false);
}

void raw_frame(Fuzz& f, ByteReader& in, std::uint8_t op) {
    std::size_t const length = in.take<std::uint16_t>() % 2048;
    auto const bytes = in.take_bytes(length);
    std::vector<std::byte> frame(bytes.size());
    std::transform(bytes.begin(), bytes.end(), frame.begin(), [](std::uint8_t b) { return std::byte{b}; });
    if (op & 8) fix_checksums(frame);
    (void)f.stack->handle_frame(frame, (op & 16) != 0);
}

void arp(Fuzz& f, ByteReader& in) {
    auto const variant = in.take<std::uint8_t>();
    auto frame = frame_around(0x0806, 28);
    std::span<std::byte> p = std::span(frame).subspan(14);
    store16(p, 0, variant & 1 ? 6 : 1);
    store16(p, 2, 0x0800);
    p[4] = std::byte{variant & 2 ? std::uint8_t{4} : std::uint8_t{6}};
    p[5] = std::byte{4};
    store16(p, 6, variant & 4 ? 2 : 1);
    p[8] = std::byte{static_cast<std::uint8_t>(variant & 8 ? 1 : 6)};
    store32(p, 14, guest_ip);
    store32(p, 24, variant & 16 ? guest_ip : mmds_ip);
    (void)f.stack->handle_frame(frame, false);
}

// Every frame MMDS makes is an ARP reply or an IPv4 TCP segment with right checksums.
void check_frame(Fuzz& f, std::span<std::byte const> frame) {
    KVMLET_FUZZ_CHECK(frame.size() >= 42 && frame.size() <= mmds::MmdsStack::max_frame);
    if (load16(frame, 12) == 0x0806) {
        KVMLET_FUZZ_CHECK(frame.size() == 42 && load16(frame, 14 + 6) == 2);
        return;
    }
    KVMLET_FUZZ_CHECK(load16(frame, 12) == 0x0800);
    auto ip = frame.subspan(14);
    KVMLET_FUZZ_CHECK(ip.size() >= 40 && load16(ip, 2) == ip.size());
    KVMLET_FUZZ_CHECK(mmds::checksum_of(mmds::ones_sum(ip.first(20))) == 0);
    auto tcp = ip.subspan(20);
    KVMLET_FUZZ_CHECK(mmds::checksum_of(mmds::ones_sum(
                          tcp, mmds::pseudo_header_sum(mmds_ip, load32(ip, 16), tcp.size()))) == 0);
    std::size_t const header = (std::to_integer<std::size_t>(tcp[12]) >> 4) * 4;
    auto const flags = std::to_integer<std::uint8_t>(tcp[13]);
    std::size_t const data = tcp.size() - header;
    KVMLET_FUZZ_CHECK(data <= mmds::TcpConnection::max_mss);
    auto& p = f.ports[load16(tcp, 2)];
    if (flags & mmds::tcp::rst) return;
    p.mmds_next = load32(tcp, 4) + static_cast<std::uint32_t>(data) + ((flags & 3) ? 1u : 0u);
    // A token in a response body: used by later requests.
    std::string_view const body(reinterpret_cast<char const*>(tcp.data() + header), data);
    if (auto at = body.find("\r\n\r\n"); at != std::string_view::npos && body.size() - at - 4 == 64)
        f.token = std::string(body.substr(at + 4));
}

void guest_reads(Fuzz& f, std::size_t count) {
    static std::vector<std::byte> out(mmds::MmdsStack::max_frame);
    for (std::size_t i = 0; i < count; ++i) {
        bool const had = f.stack->has_frame();
        std::size_t const n = f.stack->next_frame(out);
        KVMLET_FUZZ_CHECK(had == (n > 0));
        if (n == 0) return;
        check_frame(f, std::span(out).first(n));
    }
}

constexpr std::array<char const*, 3> stores{
    R"({"latest": {"meta-data": {"ami-id": "ami-1", "list": ["a", "b"], "n": 1}}})",
    R"({"big": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})",
    "{}",
};

void run_op(Fuzz& f, ByteReader& in, std::uint8_t op) {
    switch (op % 6) {
        case 0:
            return raw_frame(f, in, op);
        case 1:
            return built_segment(f, in);
        case 2:
            return guest_reads(f, in.take<std::uint8_t>());
        case 3:
            f.now += std::chrono::seconds(in.take<std::uint16_t>());
            return;
        case 4:
            return arp(f, in);
        default: {
            auto const choice = in.take<std::uint8_t>();
            if (choice & 0x80)
                f.stack->reset();
            else
                (void)f.store->replace(stores[choice % stores.size()]);
            return;
        }
    }
}

}  // namespace
}  // namespace kvmlet::fuzz

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    using namespace kvmlet;
    using namespace kvmlet::fuzz;
    quiet_logs();
    ByteReader in({data, size});
    Fuzz f;
    auto const config = in.take<std::uint8_t>();
    (void)f.store->replace(stores[0]);
    f.stack = std::make_unique<mmds::MmdsStack>(
        mmds::MmdsConfig{.version = (config & 1) ? mmds::Version::v2 : mmds::Version::v1,
                         .imds_compat = (config & 2) != 0,
                         .store = f.store,
                         .tokens = std::make_shared<mmds::TokenAuthority>(),
                         .clock = [&f] { return f.now; }});
    for (int n = 0; n < max_ops && !in.empty(); ++n) {
        run_op(f, in, in.take<std::uint8_t>());
        KVMLET_FUZZ_CHECK(f.stack->connections() <= mmds::MmdsStack::max_connections);
    }
    guest_reads(f, 4096);
    KVMLET_FUZZ_CHECK(!f.stack->has_frame());         // what it sends is bounded
    if (std::getenv("KVMLET_FUZZ_LOG") != nullptr) {  // what a seed reaches
        auto const& c = f.stack->counters();
        std::fprintf(stderr, "taken %lu sent %lu requests %lu opened %lu resets %lu malformed %lu token %s\n",
                     c.frames_taken.value(), c.frames_sent.value(), c.requests.value(),
                     c.connections_opened.value(), c.resets_sent.value(), c.malformed.value(),
                     f.token.c_str());
    }
    return 0;
}
