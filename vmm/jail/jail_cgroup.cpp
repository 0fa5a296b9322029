#include "vmm/jail/jail_cgroup.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include "vmm/base/error.hpp"
#include "vmm/jail/fs_util.hpp"

namespace kvmlet::jail {
namespace {

constexpr std::string_view step = "cgroup";

bool has_controller(CgroupMount const& m, std::string_view controller) {
    return std::find(m.controllers.begin(), m.controllers.end(), controller) != m.controllers.end();
}

std::string trimmed(std::string text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) text.pop_back();
    return text;
}

std::set<std::string> words(std::string const& text) {
    std::set<std::string> out;
    std::istringstream in(text);
    for (std::string w; in >> w;) out.insert(w);
    return out;
}

// v2: the controllers a child needs must be on in each parent's cgroup.subtree_control.
void enable_controllers(std::string const& dir, std::set<std::string> const& needed) {
    std::set<std::string> on = words(read_small_file(step, dir + "/cgroup.subtree_control"));
    for (auto const& controller : needed) {
        if (on.count(controller) != 0) continue;
        write_file(step, dir + "/cgroup.subtree_control", "+" + controller,
                   fmt::format("+{} to {}/cgroup.subtree_control", controller, dir));
    }
}

// v1 cpuset: a new cgroup's CPUs and memory nodes are empty, and no task may join it then.
void inherit_cpuset(std::string const& dir) {
    auto parent = dir.substr(0, dir.rfind('/'));
    for (std::string file : {"cpuset.cpus", "cpuset.mems"}) {
        if (!trimmed(read_small_file(step, dir + "/" + file)).empty()) continue;
        write_file(step, dir + "/" + file, trimmed(read_small_file(step, parent + "/" + file)), file);
    }
}

void write_setting(std::string const& dir, CgroupSetting const& s) {
    std::string what = fmt::format("{}={}", s.file, s.value);
    write_file(step, dir + "/" + s.file, s.value, what);
    std::string read = trimmed(read_small_file(step, dir + "/" + s.file));
    auto page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
    if (!cgroup_value_matches(s.file, s.value, read, page))
        throw Error(fmt::format("{}: {} reads back as '{}'", step, what, read));
}

std::vector<pid_t> members(std::string const& dir) {
    std::vector<pid_t> out;
    try {
        std::istringstream in(read_small_file(step, dir + "/cgroup.procs"));
        for (pid_t pid = 0; in >> pid;) out.push_back(pid);
    } catch (Error const&) {
    }
    return out;
}

// Removes the cgroup, first ending what the VMM may have left in it (its own children).
std::string remove_cgroup(std::string const& dir) noexcept {
    using namespace std::chrono_literals;
    auto deadline = std::chrono::steady_clock::now() + 2s;
    for (;;) {
        if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return {};
        if (errno != EBUSY || std::chrono::steady_clock::now() > deadline)
            return fmt::format("{}: {}", dir, std::strerror(errno));
        for (pid_t pid : members(dir)) kill(pid, SIGKILL);
        std::this_thread::sleep_for(10ms);
    }
}

}  // namespace

JailCgroup::JailCgroup(JailOptions const& options) {
    plan(options);
    try {
        for (auto& h : hierarchies_) make(h, options);
    } catch (...) {
        remove();
        throw;
    }
}

JailCgroup::~JailCgroup() {
    remove();
}

// Which hierarchies, with which settings: v1 groups the settings by the mount of their
// controller; v2 has one hierarchy, made even without settings (it accounts the VMM).
void JailCgroup::plan(JailOptions const& options) {
    auto mounts = parse_cgroup_mounts(read_small_file(step, "/proc/self/mountinfo"));
    if (options.cgroup_version == CgroupVersion::v2) {
        auto m = std::find_if(mounts.begin(), mounts.end(), [](auto const& c) { return c.version == 2; });
        if (m == mounts.end()) throw Error(fmt::format("{}: no cgroup v2 hierarchy is mounted", step));
        hierarchies_.push_back(Hierarchy{m->path, 2, options.cgroups, {}});
        return;
    }
    for (auto const& s : options.cgroups) {
        std::string_view controller = controller_of(s.file);
        if (controller == "cgroup")
            throw Error(fmt::format("{}: {}: names no controller (cgroup v1)", step, s.file));
        auto m = std::find_if(mounts.begin(), mounts.end(),
                              [&](auto const& c) { return c.version == 1 && has_controller(c, controller); });
        if (m == mounts.end())
            throw Error(fmt::format("{}: cannot write {}={}: no cgroup v1 hierarchy has the {} controller",
                                    step, s.file, s.value, controller));
        auto h = std::find_if(hierarchies_.begin(), hierarchies_.end(),
                              [&](auto const& x) { return x.mount == m->path; });
        if (h == hierarchies_.end())
            h = hierarchies_.insert(hierarchies_.end(), Hierarchy{m->path, 1, {}, {}});
        h->settings.push_back(s);
    }
}

void JailCgroup::make(Hierarchy& h, JailOptions const& options) {
    std::set<std::string> needed;
    for (auto const& s : h.settings) {
        if (controller_of(s.file) != "cgroup") needed.insert(std::string(controller_of(s.file)));
    }
    if (h.version == 2) {
        auto available = words(read_small_file(step, h.mount + "/cgroup.controllers"));
        for (auto const& c : needed) {
            if (available.count(c) == 0)
                throw Error(
                    fmt::format("{}: the {} controller is not available in the cgroup v2 hierarchy at {} "
                                "(bound to a v1 hierarchy?)",
                                step, c, h.mount));
        }
    }
    std::string dir = h.mount;
    std::string path = options.parent() + "/" + options.id;
    for (std::size_t at = 0; at != std::string::npos;) {
        auto slash = path.find('/', at);
        if (h.version == 2) enable_controllers(dir, needed);
        dir += "/" + path.substr(at, slash == std::string::npos ? std::string::npos : slash - at);
        bool last = slash == std::string::npos;
        if (mkdir(dir.c_str(), 0755) == 0) {
            h.made.push_back(dir);
            if (h.version == 1 && needed.count("cpuset") != 0) inherit_cpuset(dir);
        } else if (errno != EEXIST) {
            throw system_error(fmt::format("{}: cannot make {}", step, dir));
        } else if (last && !members(dir).empty()) {
            throw Error(fmt::format("{}: {} exists and has processes (another jail with the id {}?)", step,
                                    dir, options.id));
        }
        at = last ? std::string::npos : slash + 1;
    }
    h.dir = dir;
    for (auto const& s : h.settings) write_setting(dir, s);
}

std::vector<std::string> JailCgroup::join_files() const {
    std::vector<std::string> out;
    for (auto const& h : hierarchies_) out.push_back(h.dir + "/cgroup.procs");
    return out;
}

std::vector<std::string> JailCgroup::dirs() const {
    std::vector<std::string> out;
    for (auto const& h : hierarchies_) out.push_back(h.dir);
    return out;
}

void JailCgroup::remove() noexcept {
    for (auto& h : hierarchies_) {
        if (!h.dir.empty()) {
            if (auto error = remove_cgroup(h.dir); !error.empty())
                report(fmt::format("cleanup: cannot remove the cgroup {}", error));
        }
        remove_empty_dirs(h.made);
        h.made.clear();
        h.dir.clear();
    }
}

}  // namespace kvmlet::jail
