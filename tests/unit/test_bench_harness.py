"""The benchmarks' harness: no module of bench/ hides a standard library module from a script run there."""

from __future__ import annotations

import sys

from tests.conftest import REPO


def test_no_bench_module_shadows_the_standard_library() -> None:
    """A script run from bench/ (Quix's serve app was one) has bench/ first on its path: bench/http.py made
    ``import http`` find it, and the Quix process died at import while bench.e2e waited an hour."""
    shadowing = sorted(p.name for p in (REPO / "bench").glob("*.py") if p.stem in sys.stdlib_module_names)
    assert not shadowing
