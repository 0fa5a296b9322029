#include "vmm/machine/timeline_report.hpp"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "vmm/base/error.hpp"

namespace kvmlet {
namespace {

nlohmann::ordered_json exit_counts(Timeline const& timeline, std::optional<Phase> phase) {
    nlohmann::ordered_json counts = nlohmann::ordered_json::object();
    for (std::size_t r = 0; r < exit_reason_count; ++r) {
        auto reason = static_cast<ExitReason>(r);
        counts[std::string(name(reason))] =
            phase ? timeline.exits(*phase, reason) : timeline.total_exits(reason);
    }
    return counts;
}

char const* token(StopKind kind) {
    switch (kind) {
        case StopKind::power_off:
            return "power_off";
        case StopKind::reset:
            return "reset";
        case StopKind::halted:
            return "halted";
        case StopKind::crashed:
            return "crashed";
        case StopKind::quit:
            return "quit";
        case StopKind::signal:
            return "signal";
    }
    return "unknown";
}

}  // namespace

std::string timeline_json(Timeline const& timeline, StopReason const& stop) {
    nlohmann::ordered_json phases = nlohmann::ordered_json::array();
    nlohmann::ordered_json exits = nlohmann::ordered_json::object();
    for (std::size_t p = 0; p < phase_count; ++p) {
        auto phase = static_cast<Phase>(p);
        auto at = timeline.reached(phase);
        if (!at) continue;
        phases.push_back({{"name", name(phase)}, {"wall_us", at->wall_us}, {"cpu_us", at->cpu_us}});
        exits[std::string(name(phase))] = exit_counts(timeline, phase);
    }
    exits["total"] = exit_counts(timeline, std::nullopt);
    nlohmann::ordered_json doc = {
        {"schema", "kvmlet-timeline/1"},
        {"start_resolution_us", process_start_resolution_us()},
        {"phases", phases},
        {"exits", exits},
        {"stop", {{"kind", token(stop.kind)}, {"detail", stop.message.substr(0, stop.message.find('\n'))}}},
    };
    return doc.dump(2) + "\n";
}

void write_timeline(std::filesystem::path const& path, Timeline const& timeline, StopReason const& stop) {
    std::ofstream out(path, std::ios::trunc);
    out << timeline_json(timeline, stop);
    out.close();
    if (!out) throw Error(fmt::format("--timeline {}: cannot write it", path.string()));
}

std::string timeline_summary(Timeline const& timeline) {
    std::string line = "timeline:";
    for (std::size_t p = 1; p < phase_count; ++p) {
        auto phase = static_cast<Phase>(p);
        if (auto at = timeline.reached(phase))
            line += fmt::format(" {} {:.1f} ms;", name(phase), static_cast<double>(at->wall_us) / 1000.0);
    }
    std::uint64_t total = 0;
    for (std::size_t r = 0; r < exit_reason_count; ++r)
        total += timeline.total_exits(static_cast<ExitReason>(r));
    return line + fmt::format(" {} exits to kvmlet", total);
}

}  // namespace kvmlet
