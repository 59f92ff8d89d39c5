"""The benchmarks' shared harness: a dead child fails a bench at once, ``--smoke`` picks small sizes, and no module
of bench/ hides a standard library module from a script run there."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading

import pytest

from bench.harness import Child, ChildDied, LoopThread, arguments, new_log, run_to_end, wait_for
from tests.conftest import REPO


def test_no_bench_module_shadows_the_standard_library() -> None:
    """A script run from bench/ (Quix's serve app was one) has bench/ first on its path: bench/http.py made
    ``import http`` find it, and the Quix process died at import while bench.e2e waited an hour."""
    shadowing = sorted(p.name for p in (REPO / "bench").glob("*.py") if p.stem in sys.stdlib_module_names)
    assert not shadowing


def exits(code: int, saying: str) -> Child:
    log = new_log("harness-test")
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-c", f"print({saying!r}); raise SystemExit({code})"],
                                   stdout=out, stderr=subprocess.STDOUT)
    return Child("the test child", process, log)


def test_a_wait_fails_as_soon_as_a_watched_process_dies_saying_why() -> None:
    child = exits(3, "ModuleNotFoundError: no module named quixstreams")
    with pytest.raises(ChildDied) as died:
        wait_for(lambda: False, watching=[child], timeout_s=60, what="something only the child could do")
    assert "the test child exited with 3" in str(died.value)
    assert "ModuleNotFoundError: no module named quixstreams" in str(died.value)


def test_a_wait_fails_as_soon_as_a_watched_thread_dies() -> None:
    def loop(stopping: threading.Event) -> None:
        raise ValueError("the broker said no")

    with pytest.raises(ChildDied, match="the broker said no"):
        wait_for(lambda: False, watching=[LoopThread("the test loop", loop)], timeout_s=60, what="never")


def test_a_child_run_to_its_end_must_exit_0() -> None:
    run_to_end(exits(0, "done"), watching=[], timeout_s=60)
    with pytest.raises(ChildDied, match="exited with 2"):
        run_to_end(exits(2, "bad arguments"), watching=[], timeout_s=60)


def test_smoke_takes_the_small_sizes_unless_one_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(*argv: str) -> argparse.Namespace:
        monkeypatch.setattr(sys, "argv", ["bench", *argv])
        parser = argparse.ArgumentParser()
        parser.add_argument("--events", type=int, default=200_000)
        parser.add_argument("--seconds", type=int, default=40)
        return arguments(parser, {"events": 300, "seconds": 4})

    assert (parse().events, parse().seconds) == (200_000, 40)
    assert (parse("--smoke").events, parse("--smoke").seconds) == (300, 4)
    assert (parse("--smoke", "--events", "1000").events, parse("--smoke", "--events", "1000").seconds) == (1000, 4)


def test_a_death_quotes_the_end_of_the_childs_log() -> None:
    child = exits(1, "\n".join(f"line {i}" for i in range(100)))
    child.process.wait()
    with pytest.raises(ChildDied) as died:
        child.check()
    assert "line 99" in str(died.value) and "line 0\n" not in str(died.value)
