#include "vmm/jail/jail_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/base/error.hpp"
#include "vmm/jail/fs_util.hpp"

namespace kvmlet::jail {
namespace {

constexpr std::string_view dir_step = "jail dir";
constexpr std::string_view copy_step = "exec-file";

Error copy_error(std::string const& what, int err = errno) {
    return Error(fmt::format("{}: {}: {}", copy_step, what, std::strerror(err)));
}

void copy_bytes(int from, int to, std::uint64_t size, std::string const& target) {
    std::uint64_t left = size;
    while (left > 0) {
        ssize_t n = sendfile(to, from, nullptr, left > (1u << 30) ? (1u << 30) : left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw copy_error(fmt::format("cannot copy it to {}", target));
        if (n == 0) throw Error(fmt::format("{}: it shrank while being copied to {}", copy_step, target));
        left -= static_cast<std::uint64_t>(n);
    }
}

}  // namespace

JailDir::JailDir(JailOptions const& options) : dir_(options.jail_dir()), root_(options.root_dir()) {
    made_ = make_dirs(dir_step, root_);
    try {
        lock(options.id);
        copy_exec_file(options);
    } catch (...) {
        remove();
        throw;
    }
}

JailDir::~JailDir() {
    remove();
}

void JailDir::lock(std::string const& id) {
    lock_.reset(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!lock_.valid()) throw system_error(fmt::format("{}: cannot open {}", dir_step, dir_));
    if (flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        lock_.reset();
        made_.clear();  // another jailer's: not ours to remove
        if (err == EWOULDBLOCK)
            throw Error(fmt::format("{}: {} is in use by another jail with the id {}", dir_step, dir_, id));
        throw system_error(fmt::format("{}: cannot lock {}", dir_step, dir_), err);
    }
}

// A copy, not a link: the jailed VMM owns its binary and cannot reach the host's. An older file
// of that name is unlinked first, so a hard link to the host's binary is never written through.
void JailDir::copy_exec_file(JailOptions const& options) const {
    UniqueFd from(open(options.exec_file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!from.valid()) throw copy_error(fmt::format("cannot open {}", options.exec_file));
    struct stat st {};
    if (fstat(from.get(), &st) != 0) throw copy_error(options.exec_file);
    if (!S_ISREG(st.st_mode))
        throw Error(fmt::format("{}: {} is not a regular file", copy_step, options.exec_file));
    std::string target = root_ + "/" + options.exec_name();
    if (unlink(target.c_str()) != 0 && errno != ENOENT)
        throw copy_error(fmt::format("cannot replace {}", target));
    UniqueFd to(open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0700));
    if (!to.valid()) throw copy_error(fmt::format("cannot create {}", target));
    copy_bytes(from.get(), to.get(), static_cast<std::uint64_t>(st.st_size), target);
    if (fchown(to.get(), options.uid, options.gid) != 0)
        throw copy_error(fmt::format("cannot chown {}", target));
    if (fchmod(to.get(), (st.st_mode & 0755) | 0500) != 0)
        throw copy_error(fmt::format("cannot chmod {}", target));
}

void JailDir::write_pid_file(std::string const& exec_name, pid_t pid) const {
    std::string path = fmt::format("{}/{}.pid", root_, exec_name);
    UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
    std::string text = fmt::format("{}\n", pid);
    if (!fd.valid() || write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        throw system_error(fmt::format("pid-ns: cannot write {}", path));
}

void JailDir::remove() noexcept {
    if (lock_.valid()) {
        if (auto error = remove_tree(dir_); !error.empty())
            report(fmt::format("cleanup: cannot remove {}", error));
        lock_.reset();
    }
    remove_empty_dirs(made_);
    made_.clear();
}

}  // namespace kvmlet::jail
