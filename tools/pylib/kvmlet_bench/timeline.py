"""Reading the timeline kvmlet writes with `kvmlet run --timeline FILE` (schema kvmlet-timeline/1).

{"schema": "kvmlet-timeline/1",
 "phases": [{"name": "process_start", "wall_us": 0, "cpu_us": 0}, ...],
 "exits": {"<phase>": {"pio": 0, "mmio": 0, ...}, ..., "total": {...}},
 "stop": {"kind": "reset", "detail": "..."}}

Times are microseconds since the process started (wall: CLOCK_MONOTONIC, cpu: the process CPU
clock); an optional "start_resolution_us" says how precisely kvmlet knows its start time. A phase
that was not reached is absent. exits[phase] counts the VM exits that happened while that phase
was the latest one reached.
"""

import json
import numbers
import statistics

SCHEMA = "kvmlet-timeline/1"
# The order kvmlet reaches them in (its Phase enum); the order of a file's list is not checked.
PHASES = ("process_start", "args_parsed", "vm_created", "memory_ready", "devices_ready", "kernel_loaded",
          "first_kvm_run", "first_console_byte", "boot_timer", "shutdown_request", "process_exit")


class TimelineError(ValueError):
    pass


def _count(value, where):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TimelineError(f"{where}: {value!r} is not a count")
    return value


def _time(value, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0 or value != value:
        raise TimelineError(f"{where}: {value!r} is not a time in µs")
    return value


def parse(doc):
    """Checks a decoded timeline and returns it as
    {"phases": {name: (wall_us, cpu_us)}, "exits": {name: {kind: n}}, "stop": {...},
     "start_resolution_us": n or None, "warnings": [...]}.
    Raises TimelineError on anything that does not fit the schema; inconsistencies that do not stop
    a report (exit counts that do not add up to the total) become warnings."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else None
        raise TimelineError(f"not a {SCHEMA} document (schema: {found!r})")
    phases_in = doc.get("phases")
    if not isinstance(phases_in, list) or not phases_in:
        raise TimelineError("phases: missing or empty")
    phases = {}
    for i, p in enumerate(phases_in):
        if not isinstance(p, dict) or set(p) < {"name", "wall_us", "cpu_us"}:
            raise TimelineError(f"phases[{i}]: needs name, wall_us and cpu_us")
        name = p["name"]
        if name not in PHASES:
            raise TimelineError(f"phases[{i}]: unknown phase {name!r}")
        if name in phases:
            raise TimelineError(f"phases[{i}]: {name} appears twice")
        phases[name] = (_time(p["wall_us"], f"{name}.wall_us"), _time(p["cpu_us"], f"{name}.cpu_us"))

    exits_in = doc.get("exits", {})
    if not isinstance(exits_in, dict):
        raise TimelineError("exits: not an object")
    exits = {}
    for phase, counts in exits_in.items():
        if phase != "total" and phase not in PHASES:
            raise TimelineError(f"exits: unknown phase {phase!r}")
        if not isinstance(counts, dict):
            raise TimelineError(f"exits.{phase}: not an object")
        exits[phase] = {kind: _count(n, f"exits.{phase}.{kind}") for kind, n in counts.items()}

    warnings = []
    if "total" in exits:
        kinds = set().union(*exits.values())
        for kind in sorted(kinds):
            added = sum(c.get(kind, 0) for p, c in exits.items() if p != "total")
            if added != exits["total"].get(kind, 0):
                warnings.append(f"exits: {kind} per phase add up to {added}, total says {exits['total'].get(kind, 0)}")
    stop = doc.get("stop", {})
    if not isinstance(stop, dict):
        raise TimelineError("stop: not an object")
    resolution = doc.get("start_resolution_us")
    if resolution is not None:
        _time(resolution, "start_resolution_us")
    return {"phases": phases, "exits": exits, "stop": stop, "start_resolution_us": resolution,
            "warnings": warnings}


def median_exits(runs):
    """Over a list of parse() results: the median of each exit reason's total, and of each reason
    per phase, a reason or phase missing from a run counting as 0 there:
    {"total": {kind: median}, "phases": {phase: {kind: median}}}."""
    kinds, phases = {}, {}
    for parsed in runs:
        for phase, counts in parsed["exits"].items():
            target = kinds if phase == "total" else phases.setdefault(phase, {})
            for kind, n in counts.items():
                target.setdefault(kind, []).append(n)

    def med(d):
        return {k: statistics.median(v + [0] * (len(runs) - len(v))) for k, v in d.items()}
    return {"total": med(kinds), "phases": {p: med(c) for p, c in phases.items()}}


def load(path):
    """parse() of a file; a file that is not JSON raises TimelineError too."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise TimelineError(f"{path}: not JSON: {e}") from None
    try:
        return parse(doc)
    except TimelineError as e:
        raise TimelineError(f"{path}: {e}") from None
