"""Disk footprint: what `du` would say about the files a workload needs.

Sizes are allocated blocks (st_blocks * 512, as du counts them), each inode once (hard links and
a file named twice count once); directories are walked without following symlinks.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path


def du(paths):
    """Bytes allocated to the files and directory trees in paths, each inode counted once."""
    seen, total = set(), 0

    def add(path):
        nonlocal total
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        total += st.st_blocks * 512

    for p in paths:
        p = Path(p)
        if p.is_dir() and not p.is_symlink():
            add(p)
            for dirpath, dirnames, filenames in os.walk(p):
                for name in dirnames + filenames:
                    add(os.path.join(dirpath, name))
        else:
            add(p.resolve())
    return total


def shared_libraries(binary):
    """The shared libraries (and the dynamic loader) ldd resolves for binary; [] if static or
    ldd is missing."""
    ldd = shutil.which("ldd")
    if not ldd:
        return []
    r = subprocess.run([ldd, str(binary)], capture_output=True, text=True)
    if r.returncode != 0:
        return []
    libs = []
    for line in r.stdout.splitlines():
        m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if m:
            libs.append(Path(m.group(1)))
    return libs


def stripped_size(binary, tmp):
    """du of a copy of binary without debug information (binutils' strip), or None."""
    strip = shutil.which("strip")
    if not strip:
        return None
    out = Path(tmp) / (Path(binary).name + ".stripped")
    r = subprocess.run([strip, "--strip-debug", "-o", str(out), str(binary)], capture_output=True)
    if r.returncode != 0:
        return None
    size = du([out])
    out.unlink()
    return size
