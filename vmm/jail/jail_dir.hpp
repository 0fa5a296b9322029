#pragma once
// The jail's directory on the host: <base>/<exec-name>/<id>, with root/ (the VMM's "/") and the
// copy of the VMM in it. Owned by the supervising jailer; removed, with whatever the VMM left in
// it, when this object goes.
#include <sys/types.h>

#include <string>
#include <vector>

#include "vmm/base/unique_fd.hpp"
#include "vmm/jail/jail_options.hpp"

namespace kvmlet::jail {

class JailDir {
public:
    // Makes <base>/<exec-name>/<id>/root (and the parents that are missing; a jail root made
    // beforehand with the VMM's files in it is kept) and locks <id>, so a second jailer with the
    // same id and base fails. Then copies the exec file in, owned by uid:gid. Throws Error.
    explicit JailDir(JailOptions const& options);
    ~JailDir();
    JailDir(JailDir const&) = delete;
    JailDir& operator=(JailDir const&) = delete;

    std::string const& root() const noexcept { return root_; }
    // <root>/<exec-name>.pid with the VMM's pid as the host sees it (Firecracker, --new-pid-ns).
    void write_pid_file(std::string const& exec_name, pid_t pid) const;

private:
    void lock(std::string const& id);
    void copy_exec_file(JailOptions const& options) const;
    void remove() noexcept;

    std::string dir_;
    std::string root_;
    std::vector<std::string> made_;  // the directories made, outermost first
    UniqueFd lock_;
};

}  // namespace kvmlet::jail
