"""Shared code of the benchmark and comparison tools (tools/bench/*, tools/compare).

Standard library only, so every tool runs on a plain Debian python3. Scripts import it with
`sys.path.insert(0, str(ROOT / "tools/pylib"))`; its unit tests are in tests/tools/.
"""
