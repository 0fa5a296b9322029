#include "vmm/jail/fs_util.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "vmm/base/error.hpp"
#include "vmm/base/unique_fd.hpp"

namespace kvmlet::jail {
namespace {

Error step_error(std::string_view step, std::string const& what, int err = errno) {
    return Error(fmt::format("{}: {}: {}", step, what, std::strerror(err)));
}

// Empties the directory open as `dir` (on device `dev`), then leaves it for the caller to remove.
std::string empty_dir(int dir, dev_t dev, std::string const& path) noexcept {
    DIR* stream = fdopendir(dup(dir));
    if (stream == nullptr) return fmt::format("{}: {}", path, std::strerror(errno));
    std::string error;
    while (dirent* entry = readdir(stream)) {
        std::string_view name = entry->d_name;
        if (name == "." || name == "..") continue;
        struct stat st {};
        if (fstatat(dir, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        std::string child = path + "/" + entry->d_name;
        if (S_ISDIR(st.st_mode)) {
            if (st.st_dev != dev) {
                error = fmt::format("{}: another file system is mounted there; left in place", child);
                continue;
            }
            UniqueFd sub(openat(dir, entry->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (!sub.valid()) return fmt::format("{}: {}", child, std::strerror(errno));
            if (auto e = empty_dir(sub.get(), dev, child); !e.empty()) error = e;
        }
        if (unlinkat(dir, entry->d_name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0 && error.empty())
            error = fmt::format("{}: {}", child, std::strerror(errno));
    }
    closedir(stream);
    return error;
}

}  // namespace

std::vector<std::string> make_dirs(std::string_view step, std::string const& path) {
    std::vector<std::string> made;
    for (std::size_t at = path.find('/', 1);; at = path.find('/', at + 1)) {
        std::string prefix = path.substr(0, at);
        if (!prefix.empty() && prefix.back() != '/') {
            if (mkdir(prefix.c_str(), 0755) == 0) {
                made.push_back(prefix);
            } else {
                struct stat st {};
                int err = errno;
                if (err != EEXIST || stat(prefix.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
                    remove_empty_dirs(made);
                    throw step_error(step, fmt::format("cannot make {}", prefix),
                                     err == EEXIST ? ENOTDIR : err);
                }
            }
        }
        if (at == std::string::npos) break;
    }
    return made;
}

void remove_empty_dirs(std::vector<std::string> const& made) noexcept {
    for (auto it = made.rbegin(); it != made.rend(); ++it) {
        if (rmdir(it->c_str()) != 0 && errno != ENOENT) break;  // not empty: another jail's now
    }
}

std::string remove_tree(std::string const& path) noexcept {
    UniqueFd dir(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir.valid())
        return errno == ENOENT ? std::string{} : fmt::format("{}: {}", path, std::strerror(errno));
    struct stat st {};
    if (fstat(dir.get(), &st) != 0) return fmt::format("{}: {}", path, std::strerror(errno));
    std::string error = empty_dir(dir.get(), st.st_dev, path);
    dir.reset();
    if (rmdir(path.c_str()) != 0 && error.empty()) error = fmt::format("{}: {}", path, std::strerror(errno));
    return error;
}

std::string read_small_file(std::string_view step, std::string const& path) {
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) throw step_error(step, fmt::format("cannot read {}", path));
    std::string text;
    char buffer[4096];
    for (;;) {
        ssize_t n = read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw step_error(step, fmt::format("cannot read {}", path));
        if (n == 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
        if (text.size() > (1u << 20)) throw Error(fmt::format("{}: {} is larger than 1 MiB", step, path));
    }
    return text;
}

void write_file(std::string_view step, std::string const& path, std::string_view text,
                std::string_view what) {
    UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid()) throw step_error(step, fmt::format("cannot write {}", what));
    ssize_t n = write(fd.get(), text.data(), text.size());
    if (n < 0) throw step_error(step, fmt::format("cannot write {}", what));
    if (static_cast<std::size_t>(n) != text.size())
        throw Error(fmt::format("{}: cannot write {}: short write", step, what));
}

void report(std::string_view text) noexcept {
    std::fprintf(stderr, "kvmlet jail: %.*s\n", static_cast<int>(text.size()), text.data());
}

}  // namespace kvmlet::jail
