"""Plots through gnuplot (Debian gnuplot-nox): the tools write data files and a script, and
gnuplot renders them. Without gnuplot the script is still written, so the plot can be made
elsewhere with `gnuplot FILE.gp`."""

import shutil
import subprocess


def terminal(fmt, width, height):
    """The gnuplot `set terminal` line for png or svg."""
    if fmt == "svg":
        return f"set terminal svg size {width},{height} dynamic background rgb 'white' font 'sans,11'"
    return f"set terminal pngcairo size {width},{height} noenhanced font 'sans,10'"


def render(script_path):
    """Runs gnuplot on the script; returns None on success, else the reason it did not."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return "gnuplot not found (Debian package gnuplot-nox: tools/setup)"
    r = subprocess.run([gnuplot, str(script_path)], capture_output=True, text=True,
                       cwd=script_path.parent)
    if r.returncode != 0:
        return f"gnuplot failed: {r.stderr.strip()[-500:]}"
    return None


def quote(text):
    """A string literal for a gnuplot script."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'
