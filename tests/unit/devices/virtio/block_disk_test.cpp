#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "devices/virtio/block/disk.hpp"
#include "tests/unit/devices/virtio/block_test_rig.hpp"
#include "vmm/base/error.hpp"

namespace kvmlet::test {
namespace {

constexpr std::uint64_t image_size = 256 * 1024;

iovec view(std::vector<std::uint8_t>& v, std::size_t from = 0) {
    return {v.data() + from, v.size() - from};
}

}  // namespace

TEST_CASE("A disk knows its image's size and reads at an offset into several buffers") {
    TempImage image(image_size);
    Disk disk({.path = image.path()});
    CHECK(disk.size() == image_size);
    CHECK(disk.block_size() == 512);
    std::vector<std::uint8_t> a(1000), b(3096);
    iovec iov[] = {view(a), view(b)};
    REQUIRE(disk.read(8192, iov));
    CHECK(a == image.expected(8192, 1000));
    CHECK(b == image.expected(9192, 3096));
}

TEST_CASE("A disk write reaches the image file") {
    TempImage image(image_size);
    Disk disk({.path = image.path()});
    auto data = filled(4096, 9);
    iovec iov[] = {view(data)};
    REQUIRE(disk.write(4096, iov));
    REQUIRE(disk.flush());
    CHECK(image.read(4096, 4096) == data);
    CHECK(image.read(0, 4096) == image.expected(0, 4096));
}

TEST_CASE("A disk refuses transfers that run past the end of the image") {
    TempImage image(image_size);
    Disk disk({.path = image.path()});
    std::vector<std::uint8_t> buffer(1024);
    iovec iov[] = {view(buffer)};
    CHECK_FALSE(disk.read(image_size - 512, iov));
    iov[0] = view(buffer);
    CHECK_FALSE(disk.write(image_size, iov));
    iov[0] = view(buffer);
    CHECK_FALSE(disk.read(UINT64_MAX - 100, iov));
    CHECK_FALSE(disk.discard(image_size - 512, 1024));
    CHECK_FALSE(disk.write_zeroes(512, UINT64_MAX, false));
}

TEST_CASE("A read from an image that shrank behind the disk's back fails instead of spinning") {
    TempImage image(image_size);
    Disk disk({.path = image.path()});
    REQUIRE(::truncate(image.path().c_str(), 4096) == 0);
    std::vector<std::uint8_t> buffer(8192);
    iovec iov[] = {view(buffer)};
    auto r = disk.read(0, iov);
    REQUIRE_FALSE(r);
    CHECK(r.error() == "read at byte 4096: Input/output error");
}

TEST_CASE("Two read-write disks on one image conflict with an in-use error") {
    TempImage image(image_size);
    Disk first({.path = image.path()});
    CHECK_THROWS_WITH(Disk({.path = image.path()}), "disk " + image.path() + ": in use by another process");
    CHECK_THROWS_AS(Disk({.path = image.path(), .read_only = true}), Error);
}

TEST_CASE("Read-only disks share an image, and keep a read-write disk out") {
    TempImage image(image_size);
    Disk first({.path = image.path(), .read_only = true});
    Disk second({.path = image.path(), .read_only = true});
    CHECK(first.read_only());
    CHECK_THROWS_WITH(Disk({.path = image.path()}), Catch::Contains("in use by another process"));
}

TEST_CASE("The lock goes with the disk: a moved-from or destroyed disk frees the image") {
    TempImage image(image_size);
    {
        Disk first({.path = image.path()});
        Disk moved(std::move(first));
        CHECK_THROWS(Disk({.path = image.path()}));
    }
    CHECK_NOTHROW(Disk({.path = image.path()}));
}

TEST_CASE("Setup errors name the image: missing file, directory, bad id") {
    TempImage image(image_size);
    CHECK_THROWS_WITH(Disk({.path = image.path() + ".missing"}),
                      "disk " + image.path() + ".missing: No such file or directory");
    CHECK_THROWS_WITH(Disk({.path = "/dev/null"}),
                      "disk /dev/null: not a regular file or block device (a character device)");
    CHECK_THROWS_WITH(Disk({.path = "/"}), "disk /: not a regular file or block device (a directory)");
    CHECK_THROWS_AS(Disk({.path = image.path(), .id = "123456789012345678901"}), UsageError);
    CHECK_THROWS_AS(Disk({.path = image.path(), .id = "tab\there"}), UsageError);
    CHECK_NOTHROW(Disk({.path = image.path(), .id = "12345678901234567890"}));
}

TEST_CASE("An image whose size is not whole sectors still opens") {
    TempImage image(image_size + 100);
    Disk disk({.path = image.path()});
    CHECK(disk.size() == image_size + 100);
}

TEST_CASE("Write zeroes and discard make a range read as zeros and keep the file size") {
    TempImage image(image_size);
    Disk disk({.path = image.path()});
    bool const unmap = GENERATE(false, true);
    REQUIRE(disk.write_zeroes(8192, 8192, unmap));
    CHECK(image.read(8192, 8192) == std::vector<std::uint8_t>(8192, 0));
    CHECK(image.read(4096, 4096) == image.expected(4096, 4096));
    CHECK(image.read(16384, 4096) == image.expected(16384, 4096));
    REQUIRE(disk.discard(65536, 65536));
    CHECK(image.read(65536, 65536) == std::vector<std::uint8_t>(65536, 0));
    struct stat st {};
    REQUIRE(::stat(image.path().c_str(), &st) == 0);
    CHECK(static_cast<std::uint64_t>(st.st_size) == image_size);
}

TEST_CASE("cache=none copies unaligned buffers through an aligned bounce buffer") {
    TempImage image(image_size);
    Disk disk({.path = image.path(), .cache = CacheMode::none});
    CHECK(disk.block_size() >= 512);
    // One byte past an aligned allocation: misaligned for any O_DIRECT memory alignment.
    std::unique_ptr<std::uint8_t, decltype(&std::free)> raw(
        static_cast<std::uint8_t*>(std::aligned_alloc(4096, 16384)), &std::free);
    std::uint8_t* odd = raw.get() + 1;
    auto const data = filled(8192, 40);
    std::copy(data.begin(), data.end(), odd);
    iovec out[] = {{odd, 4096}, {odd + 4096, 4096}};
    REQUIRE(disk.write(4096, out));
    CHECK(disk.bounced() == 1);
    CHECK(image.read(4096, 8192) == data);

    std::fill(odd, odd + 8192, 0);
    iovec in[] = {{odd, 8192}};
    REQUIRE(disk.read(4096, in));
    CHECK(disk.bounced() == 2);
    CHECK(std::vector<std::uint8_t>(odd, odd + 8192) == data);
}

TEST_CASE("cache=none bounces a request larger than its bounce buffer a chunk at a time") {
    TempImage image(2 * 1024 * 1024);
    Disk disk({.path = image.path(), .cache = CacheMode::none});
    std::size_t const len = 600 * 1024;  // more than two 256 KiB chunks, with pieces of odd sizes
    std::vector<std::uint8_t> buffer(len + 1);
    auto const data = filled(len, 11);
    std::copy(data.begin(), data.end(), buffer.begin() + 1);
    iovec out[] = {
        {buffer.data() + 1, 1000}, {buffer.data() + 1001, 300000}, {buffer.data() + 301001, len - 301000}};
    REQUIRE(disk.write(65536, out));
    CHECK(image.read(65536, len) == data);
    std::fill(buffer.begin(), buffer.end(), 0);
    iovec in[] = {{buffer.data() + 1, 7}, {buffer.data() + 8, len - 7}};
    REQUIRE(disk.read(65536, in));
    CHECK(std::vector<std::uint8_t>(buffer.begin() + 1, buffer.end()) == data);
    CHECK(disk.bounced() == 2);
}

TEST_CASE("cache=none takes aligned buffers directly and refuses unaligned offsets") {
    TempImage image(image_size);
    Disk disk({.path = image.path(), .cache = CacheMode::none});
    std::unique_ptr<std::uint8_t, decltype(&std::free)> raw(
        static_cast<std::uint8_t*>(std::aligned_alloc(4096, 8192)), &std::free);
    iovec iov[] = {{raw.get(), 8192}};
    REQUIRE(disk.read(disk.block_size(), iov));
    CHECK(disk.bounced() == 0);
    CHECK(std::vector<std::uint8_t>(raw.get(), raw.get() + 8192) == image.expected(disk.block_size(), 8192));
    iov[0] = {raw.get(), 512};
    CHECK_FALSE(disk.read(100, iov));
}

}  // namespace kvmlet::test

namespace kvmlet::test {
namespace {

TEST_CASE("A disk id is at most 20 bytes of printable ASCII without spaces: one check for CLI and device") {
    CHECK_FALSE(disk_id_problem(""));  // no id: GET_ID answers with an empty string
    CHECK_FALSE(disk_id_problem("data-disk_1"));
    CHECK_FALSE(disk_id_problem(std::string(20, 'a')));
    CHECK(disk_id_problem(std::string(21, 'a')) == "longer than 20 bytes");
    CHECK(disk_id_problem("two words") == "must be printable ASCII without spaces");
    CHECK(disk_id_problem("tab\there"));
    CHECK(disk_id_problem("\x7f"));
}

}  // namespace
}  // namespace kvmlet::test
