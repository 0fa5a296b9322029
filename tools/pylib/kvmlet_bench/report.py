"""Formatting shared by the reports: numbers, Markdown tables, CSV."""

import csv

MiB = 1024 * 1024


def fmt_ms(seconds):
    """Seconds as milliseconds with about four significant digits ("-" for None)."""
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    for limit, digits in ((10, 3), (100, 2), (1000, 1)):
        if abs(ms) < limit:
            return f"{ms:.{digits}f}"
    return f"{ms:.0f}"


def fmt_s(seconds, digits=2):
    """Seconds with a fixed number of decimals ("-" for None)."""
    return "-" if seconds is None else f"{seconds:.{digits}f}"


def fmt_ratio(value):
    """A ratio as "1.23x" ("-" for None)."""
    return "-" if value is None else f"{value:.2f}x"


def fmt_mib(nbytes):
    return "-" if nbytes is None else f"{nbytes / MiB:.2f}"


def fmt_size(nbytes):
    """A disk size for people: B, KiB, MiB or GiB."""
    if nbytes is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers, rows, right=()):
    """A GitHub-flavoured Markdown table; columns whose index is in `right` align right."""
    widths = [max(len(_cell(h)), *(len(_cell(r[i])) for r in rows)) for i, h in enumerate(headers)]

    def line(cells):
        out = []
        for i, c in enumerate(cells):
            c = _cell(c)
            out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
        return "| " + " | ".join(out) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2))
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def parse_markdown_table(text):
    """The first Markdown table in text as (headers, rows); raises ValueError if it is malformed
    (no separator line, or a row with another number of cells than the header)."""
    lines = [ln.strip() for ln in text.splitlines()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("|")), None)
    if start is None:
        raise ValueError("no table")
    block = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        block.append(ln)

    def cells(ln):
        if not ln.endswith("|") or len(ln) < 2:
            raise ValueError(f"row does not end with '|': {ln}")
        parts, cur, i, body = [], "", 0, ln[1:-1]
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body) and body[i + 1] == "|":
                cur += "|"
                i += 2
                continue
            if body[i] == "|":
                parts.append(cur.strip())
                cur = ""
            else:
                cur += body[i]
            i += 1
        parts.append(cur.strip())
        return parts

    if len(block) < 2:
        raise ValueError("table has no separator line")
    headers, rule = cells(block[0]), cells(block[1])
    if len(rule) != len(headers) or not all(c and set(c) <= set("-:") and "-" in c for c in rule):
        raise ValueError(f"bad separator line: {block[1]}")
    rows = [cells(ln) for ln in block[2:]]
    for r in rows:
        if len(r) != len(headers):
            raise ValueError(f"row has {len(r)} cells, header has {len(headers)}: {r}")
    return headers, rows


def write_csv(path, headers, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(headers)
        w.writerows(rows)
