#pragma once
// The jail's cgroup on the host: <mount>/<parent>/<id> in each hierarchy the --cgroup settings
// need (v1: one per controller mount; v2: the unified one, always), the values written and read
// back. The jailed process joins it itself (join_files); the supervising jailer stays outside,
// so it can remove the cgroup once the VMM is gone.
#include <string>
#include <vector>

#include "vmm/jail/jail_options.hpp"

namespace kvmlet::jail {

class JailCgroup {
public:
    // Throws Error("cgroup: ..."), having removed what it made.
    explicit JailCgroup(JailOptions const& options);
    ~JailCgroup();
    JailCgroup(JailCgroup const&) = delete;
    JailCgroup& operator=(JailCgroup const&) = delete;

    // The cgroup.procs files the jailed process writes "0" to (itself, in any PID namespace).
    std::vector<std::string> join_files() const;
    std::vector<std::string> dirs() const;

private:
    struct Hierarchy {
        std::string mount;
        int version = 1;
        std::vector<CgroupSetting> settings;
        std::string dir;                  // <mount>/<parent>/<id>, once made
        std::vector<std::string> made{};  // directories made, outermost first
    };
    void plan(JailOptions const& options);
    void make(Hierarchy& h, JailOptions const& options);
    void remove() noexcept;

    std::vector<Hierarchy> hierarchies_;
};

}  // namespace kvmlet::jail
