// virtio-net with MMDS: ARP, whole TCP + HTTP exchanges for V1 and V2, the answer formats.
#include <catch2/catch.hpp>

#include "tests/unit/devices/virtio/net_mmds_rig.hpp"

namespace kvmlet::test {
namespace {

namespace tcp = mmds::tcp;

constexpr char const* metadata = R"({"latest": {"meta-data": {"ami-id": "ami-1", "network": {"mac": "x"},
                                      "count": 3, "list": ["a", "b"]}}})";

std::string get(std::string const& path, std::string const& headers = {}) {
    return "GET " + path + " HTTP/1.1\r\nHost: 169.254.169.254\r\n" + headers + "Connection: close\r\n\r\n";
}

// One request on a connection of its own; returns the whole response.
std::string ask(MmdsRig& r, std::string const& request, std::uint16_t port = 40000) {
    Client c{r, port};
    c.connect();
    std::string response = c.exchange(request);
    CHECK(c.fin_seen);
    return response;
}

TEST_CASE("MMDS answers an ARP request for its address with its own MAC and nothing reaches the TAP") {
    MmdsRig r;
    r.guest_sends(arp_request(mmds_ip));
    auto frames = r.guest_receives();
    REQUIRE(frames.size() == 1);
    auto const& f = frames[0];
    REQUIRE(f.size() == 42);
    std::span<std::byte const> arp = std::span(f).subspan(14);
    CHECK(mmds::load16(f, 12) == 0x0806);
    CHECK(mmds::load16(arp, 6) == 2);  // reply
    for (std::size_t i = 0; i < 6; ++i) {
        CHECK(std::to_integer<std::uint8_t>(f[i]) == guest_mac[i]);
        CHECK(std::to_integer<std::uint8_t>(arp[8 + i]) == mmds::MmdsStack::mac[i]);
        CHECK(std::to_integer<std::uint8_t>(arp[18 + i]) == guest_mac[i]);
    }
    CHECK(mmds::load32(arp, 14) == mmds_ip);
    CHECK(mmds::load32(arp, 24) == guest_ip);
    CHECK_FALSE(r.rig.peer_receive());
    CHECK(r.rig.device.counters().tx_mmds.value() == 1);
    CHECK(r.rig.device.counters().tx_packets.value() == 0);
}

TEST_CASE("frames for other addresses go to the TAP as before") {
    MmdsRig r;
    r.guest_sends(arp_request(0xa9fe0101));
    r.guest_sends(tcp_frame({.seq = 1, .flags = tcp::syn}, 0x0a000001));
    CHECK(r.rig.peer_receive());
    CHECK(r.rig.peer_receive());
    CHECK(r.guest_receives().empty());
    CHECK(r.stack().counters().frames_taken.value() == 0);
}

TEST_CASE("MMDS's answers go into the receive queue before packets from the TAP") {
    MmdsRig r(mmds::Version::v1, false, 0);  // the guest has no receive buffers yet
    r.rig.peer_send(net::Header{}, frame_bytes(60));
    r.guest_sends(arp_request(mmds_ip));
    r.post_buffers(1);
    auto first = r.guest_receives();  // and posts one more
    REQUIRE(first.size() == 1);
    CHECK(mmds::load16(first[0], 12) == 0x0806);
    auto second = r.guest_receives();
    REQUIRE(second.size() == 1);
    CHECK(second[0] == frame_bytes(60));
}

TEST_CASE("MMDS V1 serves a GET over TCP, and the connection closes cleanly") {
    MmdsRig r;
    REQUIRE_FALSE(r.store->replace(metadata));
    std::string response = ask(r, get("/latest/meta-data/ami-id"));
    CHECK(status_line(response) == "HTTP/1.1 200 OK");
    CHECK(response.find("Content-Type: text/plain\r\n") != std::string::npos);
    CHECK(response.find("Content-Length: 5\r\n") != std::string::npos);
    CHECK(body(response) == "ami-1");
    CHECK(r.stack().connections() == 0);
    CHECK_FALSE(r.rig.peer_receive());  // nothing of it went to the TAP
    CHECK(r.stack().counters().requests.value() == 1);
    // The device reports them for the metrics line's mmds section.
    auto const metrics = r.rig.device.metrics();
    auto const value = [&](std::string_view name) -> std::optional<std::uint64_t> {
        for (auto const& m : metrics)
            if (m.name == name) return m.value;
        return std::nullopt;
    };
    CHECK(value("mmds.rx_count") == 1u);
    CHECK(value("mmds.connections_created") == 1u);
    CHECK(value("mmds.rx_accepted") == r.stack().counters().frames_taken.value());
    CHECK(value("mmds.tx_frames") == r.stack().counters().frames_sent.value());
}

TEST_CASE("MMDS lists an object IMDS style and gives JSON when asked") {
    MmdsRig r;
    REQUIRE_FALSE(r.store->replace(metadata));
    CHECK(body(ask(r, get("/latest/meta-data/"))) == "ami-id\ncount\nlist\nnetwork/");
    CHECK(body(ask(r, get("/latest"))) == "meta-data/");
    auto json = ask(r, get("/latest/meta-data/network", "Accept: application/json\r\n"));
    CHECK(json.find("Content-Type: application/json\r\n") != std::string::npos);
    CHECK(body(json) == R"({"mac":"x"})");
    CHECK(body(ask(r, get("/latest/meta-data/list/1", "Accept: application/json\r\n"))) == R"("b")");
    CHECK(status_line(ask(r, get("/latest/meta-data/count"))) == "HTTP/1.1 501 Not Implemented");
    CHECK(body(ask(r, get("/latest/meta-data/count", "accept: application/json\r\n"))) == "3");
}

TEST_CASE("with imds_compat MMDS answers IMDS style even to Accept: application/json") {
    MmdsRig r(mmds::Version::v1, true);
    REQUIRE_FALSE(r.store->replace(metadata));
    auto response = ask(r, get("/latest/meta-data/network", "Accept: application/json\r\n"));
    CHECK(body(response) == "mac");
}

TEST_CASE("MMDS answers 404, 405 and 400") {
    MmdsRig r;
    REQUIRE_FALSE(r.store->replace(metadata));
    CHECK(status_line(ask(r, get("/latest/nothing"))) == "HTTP/1.1 404 Not Found");
    CHECK(status_line(ask(r, get("/latest/meta-data/list/7"))) == "HTTP/1.1 404 Not Found");
    auto post = ask(r, "POST /latest HTTP/1.1\r\nConnection: close\r\n\r\n");
    CHECK(status_line(post) == "HTTP/1.1 405 Method Not Allowed");
    CHECK(post.find("Allow: GET, PUT\r\n") != std::string::npos);
    CHECK(status_line(ask(r, "GET /latest\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
    CHECK(status_line(ask(r, "GET latest HTTP/1.1\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
    CHECK(status_line(ask(r, "GET /latest HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")) ==
          "HTTP/1.1 400 Bad Request");
    CHECK(status_line(ask(r, "GET /latest HTTP/1.1\r\nno colon\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
}

TEST_CASE("the guest sees what the API writes to the store at once") {
    MmdsRig r;
    CHECK(status_line(ask(r, get("/latest/meta-data/ami-id"))) == "HTTP/1.1 404 Not Found");
    REQUIRE_FALSE(r.store->replace(metadata));
    REQUIRE_FALSE(r.store->merge_patch(R"({"latest": {"meta-data": {"ami-id": "ami-2"}}})"));
    CHECK(body(ask(r, get("/latest/meta-data/ami-id"))) == "ami-2");
}

TEST_CASE("MMDS keeps a connection open for several requests unless asked to close") {
    MmdsRig r;
    REQUIRE_FALSE(r.store->replace(metadata));
    Client c{r};
    c.connect();
    auto first = c.exchange("GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n");
    CHECK(body(first) == "ami-1");
    CHECK(first.find("Connection: close") == std::string::npos);
    CHECK_FALSE(c.fin_seen);
    // Two requests in one segment: answered one after the other.
    auto both = c.exchange(
        "GET /latest HTTP/1.1\r\n\r\nGET /latest/meta-data/list/0 HTTP/1.1\r\n"
        "Accept: application/json\r\nConnection: close\r\n\r\n");
    CHECK(both.find("meta-data/") != std::string::npos);
    CHECK(both.substr(both.size() - 3) == R"("a")");
    CHECK(c.fin_seen);
    CHECK(r.stack().connections() == 0);
}

TEST_CASE("MMDS V2 needs a token from PUT /latest/api/token for every GET") {
    MmdsRig r(mmds::Version::v2);
    REQUIRE_FALSE(r.store->replace(metadata));
    CHECK(status_line(ask(r, get("/latest/meta-data/ami-id"))) == "HTTP/1.1 401 Unauthorized");
    CHECK(status_line(ask(r, "PUT /latest/api/token HTTP/1.1\r\nConnection: close\r\n\r\n")) ==
          "HTTP/1.1 400 Bad Request");
    for (auto ttl : {"0", "21601", "abc", "-1"})
        CHECK(status_line(
                  ask(r, std::string("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: ") +
                             ttl + "\r\nConnection: close\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
    CHECK(status_line(ask(r,
                          "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\n"
                          "X-Forwarded-For: 1.2.3.4\r\nConnection: close\r\n\r\n")) ==
          "HTTP/1.1 400 Bad Request");
    auto issued = ask(
        r, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\nConnection: close\r\n\r\n");
    REQUIRE(status_line(issued) == "HTTP/1.1 200 OK");
    std::string const token = body(issued);
    CHECK(token.size() == 64);
    CHECK(body(ask(r, get("/latest/meta-data/ami-id", "X-metadata-token: " + token + "\r\n"))) == "ami-1");
    CHECK(body(ask(r, get("/latest/meta-data/ami-id", "X-aws-ec2-metadata-token: " + token + "\r\n"))) ==
          "ami-1");
    CHECK(status_line(ask(r, get("/latest", "X-metadata-token: " + token + "x\r\n"))) ==
          "HTTP/1.1 401 Unauthorized");
    r.now += std::chrono::seconds(60);
    CHECK(status_line(ask(r, get("/latest", "X-metadata-token: " + token + "\r\n"))) ==
          "HTTP/1.1 401 Unauthorized");
}

TEST_CASE("MMDS V1 answers without a token and accepts a valid one") {
    MmdsRig r(mmds::Version::v1);
    REQUIRE_FALSE(r.store->replace(metadata));
    auto issued = ask(r,
                      "PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n"
                      "Connection: close\r\n\r\n");
    REQUIRE(status_line(issued) == "HTTP/1.1 200 OK");
    CHECK(body(ask(r, get("/latest/meta-data/ami-id", "X-metadata-token: " + body(issued) + "\r\n"))) ==
          "ami-1");
    CHECK(body(ask(r, get("/latest/meta-data/ami-id", "X-metadata-token: wrong\r\n"))) == "ami-1");
}

TEST_CASE("a device reset forgets MMDS connections") {
    MmdsRig r;
    Client c{r};
    c.connect();
    CHECK(r.stack().connections() == 1);
    r.rig.device.reset();
    CHECK(r.stack().connections() == 0);
}

}  // namespace
}  // namespace kvmlet::test
