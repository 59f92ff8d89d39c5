"""What every benchmark shares: its ``--smoke`` flag, its figures printed as it gets them, and waits that fail as
soon as a process the bench waits on dies (rather than when the wait's deadline, up to an hour, runs out)."""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from apps.processes import start_worker, stop_process
from weir.clock import poll_until
from weir.errors import WeirError
from weir.kafka.clients import make_consumer
from weir.settings import Settings

SMOKE_HELP = "seconds and tiny sizes on the same code paths: CI's check that this bench still runs (make bench-smoke)"


def arguments(parser: argparse.ArgumentParser, smoke: Mapping[str, object]) -> argparse.Namespace:
    """The command line; with ``--smoke``, the sizes in ``smoke`` for every option not given explicitly."""
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        parser.set_defaults(**smoke)
        args = parser.parse_args()
    return args


def figure(name: str, value: str) -> None:
    """One measured figure, printed the moment the bench has it: ``name: value``."""
    print(f"{name}: {value}", flush=True)


class ChildDied(SystemExit):
    """A process or thread the bench waits on stopped by itself: the bench ends now, saying which and why."""


class Running(Protocol):
    """Something the bench started and waits on: a process, or a loop in a thread."""

    def check(self) -> None:
        """Raise ``ChildDied`` if it stopped by itself."""

    def stop(self) -> None:
        """Stop it (it may have stopped already)."""


@dataclass
class Child:
    """A process the bench started and waits on, and the log that says why it died if it does."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise ChildDied(f"{self.name} exited with {code} while the bench waited on it; {self.log} ends:\n"
                            f"{log_tail(self.log)}")

    def stop(self) -> None:
        stop_process(self.process)


def log_tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def new_log(name: str) -> Path:
    return Path(tempfile.mkstemp(prefix=f"weir-bench-{name}-", suffix=".log")[1])


def worker(settings: Settings, name: str, *stages: str) -> Child:
    """``weir worker`` with ``stages`` (all by default) in its own process, logging to a file of its own."""
    log = new_log(name)
    return Child(f"the {name} worker", start_worker(settings, log, *stages), log)


@dataclass
class LoopThread:
    """A loop the bench runs in a thread of its own until ``stop``; it fails the bench's waits if it raises."""

    name: str
    loop: Callable[[threading.Event], None]
    stopping: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.loop(self.stopping)
        except BaseException as exc:  # handed to the waiting thread by check()
            self.error = exc

    def check(self) -> None:
        if not self.thread.is_alive() and not self.stopping.is_set():
            raise ChildDied(f"{self.name} stopped while the bench waited on it: {self.error!r}")

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=60)
        if self.error is not None:
            raise ChildDied(f"{self.name} failed: {self.error!r}")


def wait_for(predicate: Callable[[], bool], *, watching: Sequence[Running], timeout_s: float,
             interval_s: float = 0.2, what: str) -> None:
    """``poll_until``, failing at once if one of ``watching`` dies: nothing would ever make ``predicate`` true."""
    def alive_and_done() -> bool:
        for child in watching:
            child.check()
        return predicate()

    poll_until(alive_and_done, timeout_s=timeout_s, interval_s=interval_s, what=what)


def run_to_end(child: Child, *, watching: Sequence[Running], timeout_s: float) -> None:
    """Wait for ``child`` to finish, failing at once if one of ``watching`` dies, and fail unless it exited 0."""
    wait_for(lambda: child.process.poll() is not None, watching=watching, timeout_s=timeout_s,
             what=f"{child.name} done")
    if child.process.returncode != 0:
        raise ChildDied(f"{child.name} exited with {child.process.returncode}; {child.log} ends:\n"
                        f"{log_tail(child.log)}")


class CommittedReader:
    """A topic's records as a ``read_committed`` consumer receives them, from its start, each with the wall-clock
    time (epoch ms) it came: the moment any reader could first read it. A latency ends there, not at a timestamp
    the stage wrote before its transaction committed."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.received: list[tuple[float, bytes]] = []
        self.consumer = make_consumer(settings, f"{settings.app_id}-bench-reader")
        partitions = self.consumer.list_topics(topic, timeout=15).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.thread = LoopThread(f"the reader of {topic}", self._read)

    def _read(self, stopping: threading.Event) -> None:
        try:
            while not stopping.is_set():
                message = self.consumer.poll(0.05)  # one record at a time: a batch would hold the first ones back
                if message is None:
                    continue
                received = time.time() * 1000
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise WeirError(f"the bench's reader: {error.str()}")
                    continue
                value = message.value()
                assert value is not None, "a Weir topic holds no null values"
                self.received.append((received, value))
        finally:
            self.consumer.close()

    def check(self) -> None:
        self.thread.check()

    def stop(self) -> None:
        self.thread.stop()
