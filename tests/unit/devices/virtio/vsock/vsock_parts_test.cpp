#include <sys/socket.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "devices/virtio/vsock/byte_ring.hpp"
#include "devices/virtio/vsock/connect_line.hpp"
#include "devices/virtio/vsock/unix_socket.hpp"
#include "tests/unit/devices/virtio/vsock/vsock_test_rig.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::test {
namespace {

TEST_CASE("a CONNECT line names a 32-bit port, the word in any case") {
    CHECK(vsock::parse_connect_line("CONNECT 1234\n") == 1234u);
    CHECK(vsock::parse_connect_line("connect 0\n") == 0u);
    CHECK(vsock::parse_connect_line("Connect   4294967295 \r\n") == 4294967295u);
    CHECK(!vsock::parse_connect_line("CONNECT 4294967296\n"));
    CHECK(!vsock::parse_connect_line("CONNECT 12"));  // no newline
    CHECK(!vsock::parse_connect_line("CONNECT\n"));
    CHECK(!vsock::parse_connect_line("CONNECT -1\n"));
    CHECK(!vsock::parse_connect_line("CONNECT 12 13\n"));
    CHECK(!vsock::parse_connect_line("CONNECTX 12\n"));
    CHECK(!vsock::parse_connect_line("CONNECT12\n"));
    CHECK(!vsock::parse_connect_line("OK 12\n"));
    CHECK(!vsock::parse_connect_line("CONNECT 1" + std::string(40, '0') + "\n"));
    CHECK(vsock::ok_line(1073741824) == "OK 1073741824\n");
}

TEST_CASE("a byte ring keeps its bytes in order across the wrap and frees its storage when empty") {
    vsock::ByteRing ring(8);
    auto fill_with = [](std::string_view s) {
        std::size_t at = 0;
        return [s, at](std::span<std::byte> out) mutable {
            std::memcpy(out.data(), s.data() + at, out.size());
            at += out.size();
            return true;
        };
    };
    REQUIRE(ring.push(6, fill_with("abcdef")));
    CHECK(!ring.push(3, fill_with("xyz")));  // more than the space
    ring.consume(4);
    REQUIRE(ring.push(5, fill_with("ghijk")));  // wraps
    std::array<iovec, 2> views{};
    REQUIRE(ring.front(views) == 2);
    std::string joined(static_cast<char*>(views[0].iov_base), views[0].iov_len);
    joined.append(static_cast<char*>(views[1].iov_base), views[1].iov_len);
    CHECK(joined == "efghijk");
    CHECK(ring.space() == 1);
    ring.consume(7);
    CHECK(ring.empty());
    CHECK(ring.front(views) == 0);
    CHECK(ring.push(0, fill_with("")));
}

TEST_CASE("virtio-vsock shows its guest CID in the configuration space and offers stream sockets") {
    VsockRig rig;
    std::array<std::byte, 8> cid{};
    rig.device.read_config(0, cid);
    std::uint64_t value = 0;
    std::memcpy(&value, cid.data(), sizeof value);
    CHECK(value == VsockRig::cid);
    std::array<std::byte, 4> past{std::byte{1}, std::byte{1}, std::byte{1}, std::byte{1}};
    rig.device.read_config(8, past);
    CHECK(past == std::array<std::byte, 4>{});
    CHECK(rig.device.type() == virtio::DeviceType::vsock);
    CHECK(rig.device.queue_max_sizes().size() == 3);
    CHECK((rig.device.features() & virtio::bit(vsock::feature::stream)) != 0);
}

TEST_CASE("virtio-vsock refuses reserved CIDs and socket paths that do not fit") {
    TempDir dir;
    for (std::uint32_t cid : {0u, 1u, 2u, 0xffff'ffffu})
        CHECK_THROWS_AS(virtio::VsockDevice({.guest_cid = cid, .uds_path = dir.path / "a"}), Error);
    CHECK_THROWS_AS(virtio::VsockDevice({.guest_cid = 3, .uds_path = dir.path / std::string(120, 'x')}),
                    Error);
    CHECK_THROWS_AS(virtio::VsockDevice({.guest_cid = 3, .uds_path = ""}), Error);
}

TEST_CASE("virtio-vsock replaces a stale socket file, refuses a live one, and removes its own") {
    TempDir dir;
    auto const path = dir.path / "v.sock";
    { UniqueFd stale = vsock::listen_unix(path, 1); }  // closed, the file stays: nobody listens there now
    REQUIRE(std::filesystem::exists(path));
    {
        virtio::VsockDevice device({.guest_cid = 3, .uds_path = path});
        struct stat st {};
        REQUIRE(::stat(path.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        CHECK_THROWS_AS(virtio::VsockDevice({.guest_cid = 4, .uds_path = path}), Error);
    }
    CHECK(!std::filesystem::exists(path));
    std::FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    std::fclose(f);
    CHECK_THROWS_AS(virtio::VsockDevice({.guest_cid = 3, .uds_path = path}), Error);  // not a socket
}

TEST_CASE("connecting to a Unix socket nobody listens on fails at once") {
    TempDir dir;
    UniqueFd fd;
    CHECK(vsock::connect_unix((dir.path / "none").string(), fd) == ENOENT);
    CHECK(vsock::connect_unix(std::string(200, 'x'), fd) == ENAMETOOLONG);
    CHECK(!fd.valid());
}

}  // namespace
}  // namespace kvmlet::test
