#pragma once
// Small file-system steps of the jailer, each with errors that name the path.
#include <string>
#include <string_view>
#include <vector>

namespace kvmlet::jail {

// Makes each missing directory of `path` (mode 0755) and returns those it made, outermost first.
// A component that exists must be a directory. Throws Error("<step>: ...").
std::vector<std::string> make_dirs(std::string_view step, std::string const& path);
// Removes the directories `made` by make_dirs, innermost first, while they are empty.
void remove_empty_dirs(std::vector<std::string> const& made) noexcept;
// Removes `path` and everything under it, never following a symbolic link nor crossing into
// another file system. Returns an error text, empty on success.
std::string remove_tree(std::string const& path) noexcept;
// The whole of a small file (/proc, cgroup files); throws Error("<step>: cannot read ...").
std::string read_small_file(std::string_view step, std::string const& path);
// Writes `text` in one write(2); throws Error("<step>: cannot write <what>: ...").
void write_file(std::string_view step, std::string const& path, std::string_view text, std::string_view what);
// One line to stderr: "kvmlet jail: <text>".
void report(std::string_view text) noexcept;

}  // namespace kvmlet::jail
