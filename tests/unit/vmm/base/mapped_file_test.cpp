#include "vmm/base/mapped_file.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "vmm/base/error.hpp"

namespace kvmlet {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the system's temporary directory, removed at the end of the test.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "kvmlet-mapped-file.XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path = pattern;
    }
    ~TempDir() { fs::remove_all(path); }
};

void write_file(fs::path const& path, std::string const& content) {
    std::ofstream(path, std::ios::binary) << content;
}

TEST_CASE("A file's bytes are read whole and stay as they were when it was opened") {
    TempDir dir;
    std::string content(3 * 1024 * 1024 + 17, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 7 + i / 4096);
    write_file(dir.path / "image", content);
    MappedFile const file(dir.path / "image", "kernel");
    write_file(dir.path / "image", "changed");
    auto const bytes = file.bytes();
    REQUIRE(bytes.size() == content.size());
    CHECK(std::equal(bytes.begin(), bytes.end(), content.begin(),
                     [](std::byte b, char c) { return b == static_cast<std::byte>(c); }));
}

TEST_CASE("A missing, empty or non-regular file is an error that names it") {
    TempDir dir;
    write_file(dir.path / "empty", "");
    CHECK_THROWS_WITH(MappedFile(dir.path / "missing", "initrd"),
                      Catch::Contains("initrd: ") && Catch::Contains("missing"));
    CHECK_THROWS_WITH(MappedFile(dir.path / "empty", "kernel"), Catch::EndsWith("empty is empty"));
    CHECK_THROWS_WITH(MappedFile(dir.path, "kernel"), Catch::EndsWith(": not a regular file (a directory)"));
}

}  // namespace
}  // namespace kvmlet
