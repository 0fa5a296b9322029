#pragma once
// The timeline of a run as a user sees it: JSON for --timeline (schema "kvmlet-timeline/1", see
// docs/boot-time.md) and a one-line summary for --verbose.
#include <filesystem>
#include <string>

#include "vmm/base/timeline.hpp"
#include "vmm/vcpu/stop_request.hpp"

namespace kvmlet {

std::string timeline_json(Timeline const& timeline, StopReason const& stop);
// Writes timeline_json() to `path`; throws Error when it cannot.
void write_timeline(std::filesystem::path const& path, Timeline const& timeline, StopReason const& stop);
std::string timeline_summary(Timeline const& timeline);

}  // namespace kvmlet
