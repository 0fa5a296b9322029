#include "vmm/base/input_file.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "vmm/base/error.hpp"

namespace kvmlet {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A fresh directory under the system's temporary directory, removed at the end of the test.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "kvmlet-input-file.XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path = pattern;
    }
    ~TempDir() { fs::remove_all(path); }
};

// A Unix socket bound at `path`: the file stays after the socket is closed.
void bind_unix_socket(fs::path const& path) {
    int const fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.string().size() < sizeof addr.sun_path);
    std::strcpy(addr.sun_path, path.c_str());
    int const bound = ::bind(fd, reinterpret_cast<sockaddr const*>(&addr), sizeof addr);
    ::close(fd);
    REQUIRE(bound == 0);
}

UniqueFd open_kernel(fs::path const& path) {
    return open_input_file(path, O_RDONLY, InputKinds::regular_file, "kernel: " + path.string());
}

UniqueFd open_disk(fs::path const& path) {
    return open_input_file(path, O_RDONLY, InputKinds::regular_file_or_block_device, "disk " + path.string());
}

TEST_CASE("A regular file opens, blocking and close-on-exec, for reading and for writing") {
    TempDir dir;
    std::ofstream(dir.path / "image") << "bytes";
    UniqueFd const fd = open_kernel(dir.path / "image");
    REQUIRE(fd.valid());
    CHECK((::fcntl(fd.get(), F_GETFL) & O_NONBLOCK) == 0);
    CHECK((::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
    char buffer[8]{};
    CHECK(::read(fd.get(), buffer, sizeof buffer) == 5);
    UniqueFd const rw =
        open_input_file(dir.path / "image", O_RDWR, InputKinds::regular_file_or_block_device, "disk");
    CHECK(((::fcntl(rw.get(), F_GETFL) & O_ACCMODE) == O_RDWR));
}

TEST_CASE("A FIFO is refused at once, without waiting for a writer") {
    TempDir dir;
    fs::path const fifo = dir.path / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // Should the open block, a writer comes after 2 s and ends the wait, so the test fails on the
    // time it took rather than hanging.
    std::promise<void> done;
    std::thread rescuer([&fifo, finished = done.get_future()] {
        if (finished.wait_for(2s) == std::future_status::ready) return;
        UniqueFd writer(::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
    });
    auto const start = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(open_kernel(fifo), "kernel: " + fifo.string() + ": not a regular file (a FIFO)");
    auto const took = std::chrono::steady_clock::now() - start;
    done.set_value();
    rescuer.join();
    CHECK(took < 1s);
}

TEST_CASE("A directory, a character device and a Unix socket are refused with what they are") {
    TempDir dir;
    CHECK_THROWS_WITH(open_kernel(dir.path),
                      "kernel: " + dir.path.string() + ": not a regular file (a directory)");
    CHECK_THROWS_WITH(open_kernel("/dev/zero"), "kernel: /dev/zero: not a regular file (a character device)");
    bind_unix_socket(dir.path / "socket");
    CHECK_THROWS_WITH(open_kernel(dir.path / "socket"),
                      "kernel: " + (dir.path / "socket").string() + ": not a regular file (a socket)");
}

TEST_CASE("A disk may be a block device, but nothing else that is not a regular file") {
    TempDir dir;
    REQUIRE(::mkfifo((dir.path / "fifo").c_str(), 0600) == 0);
    bind_unix_socket(dir.path / "socket");
    CHECK_THROWS_WITH(open_disk(dir.path / "fifo"),
                      Catch::EndsWith("fifo: not a regular file or block device (a FIFO)"));
    CHECK_THROWS_WITH(open_disk(dir.path),
                      Catch::EndsWith(": not a regular file or block device (a directory)"));
    CHECK_THROWS_WITH(open_disk("/dev/zero"),
                      "disk /dev/zero: not a regular file or block device (a character device)");
    CHECK_THROWS_WITH(open_disk(dir.path / "socket"),
                      Catch::EndsWith("socket: not a regular file or block device (a socket)"));
    CHECK(describe_file_kind(S_IFBLK | 0660) == "a block device");
}

TEST_CASE("A missing file is the system's error under the context") {
    TempDir dir;
    CHECK_THROWS_WITH(open_kernel(dir.path / "missing"),
                      "kernel: " + (dir.path / "missing").string() + ": No such file or directory");
    CHECK_THROWS_WITH(check_input_kind(dir.path / "missing", InputKinds::regular_file, "initrd: x"),
                      "initrd: x: No such file or directory");
}

TEST_CASE("The kind check alone refuses the same paths without opening them") {
    TempDir dir;
    REQUIRE(::mkfifo((dir.path / "fifo").c_str(), 0600) == 0);
    std::ofstream(dir.path / "image") << "bytes";
    CHECK_NOTHROW(check_input_kind(dir.path / "image", InputKinds::regular_file, "kernel"));
    CHECK_THROWS_WITH(check_input_kind(dir.path / "fifo", InputKinds::regular_file, "initrd: f"),
                      "initrd: f: not a regular file (a FIFO)");
    CHECK_THROWS_WITH(
        check_input_kind("/dev/zero", InputKinds::regular_file_or_block_device, "disk /dev/zero"),
        "disk /dev/zero: not a regular file or block device (a character device)");
}

}  // namespace
}  // namespace kvmlet
