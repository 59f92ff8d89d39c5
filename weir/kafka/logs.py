"""librdkafka's own log, summarised: the first line of each kind, then how often it repeated.

Left alone, librdkafka prints every log line to stderr: a bootstrap address
nobody listens on prints a "Connect ... failed: Connection refused" line every
few dozen milliseconds, hundreds before the command gives up. Every client Weir
makes (``weir.kafka.clients``, ``admin``, ``reading``) hands its log to the
Python logger ``weir.librdkafka`` instead (confluent-kafka's ``logger`` key),
where a ``LibrdkafkaLog`` filter lets the first line of each message shape
through and counts the repeats: numbers, durations, broker ids and librdkafka's
own "N identical error(s) suppressed" do not make a line new. A shape that
repeats gets one line saying how often, at most once per interval (60 s), and a
last one when the process exits.

With a ``logger``, confluent-kafka queues librdkafka's lines until the client
is served: ``poll``, ``flush``, ``consume`` for producers and consumers, only
``poll`` for an AdminClient (whose lines are otherwise dropped with it). The
level stays librdkafka's (``log_level``, warnings and errors unless debugging);
where the lines go is the Python logging configuration's: without one, Python
prints warnings and errors to stderr.
"""

from __future__ import annotations

import atexit
import functools
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LOGGER_NAME = "weir.librdkafka"
SUMMARY_INTERVAL_S = 60.0

# How confluent-kafka's log callback calls ``Logger.log``: the facility (FAIL, REQTMOUT...), the client's name
# (rdkafka#producer-1) and librdkafka's line.
_CONFLUENT_FORMAT = "%s [%s] %s"
_SUMMARY_MARK = "librdkafka_summary"  # set on the summary records, which the filter lets through

_THREAD = re.compile(r"^\[thrd:[^\]]*\]:\s*")  # "[thrd:127.0.0.1:9092/bootstrap]: ", the broker thread's name
_SUPPRESSED = re.compile(r",?\s*(\d+) identical error\(s\) suppressed")
_BROKER_ID = re.compile(r"(:\d+)/(?:\d+|bootstrap)\b")  # host:port/1, host:port/bootstrap: the same broker
# A number standing alone, a duration's with its unit: not a part of an address (127.0.0.1:9092), a name
# (producer-1, broker#3) or a word.
_NUMBER = re.compile(r"(?<![\w.:#-])-?\d+(?:\.\d+)?(ms|us|s)?(?![\w.:])")


def shape(line: str) -> str:
    """What stays the same when librdkafka says ``line`` again: without the thread, the broker id, the numbers
    and the count of suppressed repeats."""
    text = _SUPPRESSED.sub("", _THREAD.sub("", line))
    text = _BROKER_ID.sub(r"\1", text)
    return _NUMBER.sub(lambda m: "N" + (m.group(1) or ""), text)


def suppressed(line: str) -> int:
    """How many identical lines librdkafka says it left out before ``line``."""
    found = _SUPPRESSED.search(line)
    return int(found.group(1)) if found else 0


@dataclass
class _Shape:
    text: str  # what the summary line shows
    level: int
    since: float  # when this shape was last reported: its first line or its last summary
    repeats: int = 0  # since then


@dataclass(frozen=True)
class _Summary:
    text: str
    level: int
    repeats: int
    window_s: float


class LibrdkafkaLog(logging.Filter):
    """A filter for the logger confluent-kafka clients log to: the first line of each shape passes, with
    ``librdkafka:`` in front; repeats are counted and reported as one line per shape at most every
    ``interval_s``, and by ``flush``. Thread safe: lines come from whichever thread serves a client.

    It emits its summaries through ``logger`` itself, so install it there: ``LibrdkafkaLog.on(logger)``.
    """

    def __init__(self, logger: logging.Logger, *, interval_s: float = SUMMARY_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, max_shapes: int = 256) -> None:
        super().__init__()
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._max_shapes = max_shapes
        self._shapes: dict[tuple[int, str, str], _Shape] = {}
        self._next_due = float("inf")  # the earliest time a pending count may be due
        self._lock = threading.Lock()

    @classmethod
    def on(cls, logger: logging.Logger, **options: Any) -> LibrdkafkaLog:
        summary = cls(logger, **options)
        logger.addFilter(summary)
        return summary

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY_MARK, False):
            return True
        facility, client, line = _parts(record)
        key = (record.levelno, facility, shape(line))
        now = self._clock()
        with self._lock:
            entry = self._shapes.get(key)
            due: list[_Summary] = []
            if entry is None:
                if len(self._shapes) >= self._max_shapes:  # forget what was seen, after reporting its counts
                    due = [self._take(s, now) for s in self._shapes.values() if s.repeats]
                    self._shapes.clear()
                text = f"{facility} {key[2]}" if facility else key[2]
                self._shapes[key] = _Shape(text, record.levelno, since=now)
            else:
                entry.repeats += 1 + suppressed(line)
                self._next_due = min(self._next_due, entry.since + self.interval_s)
            if now >= self._next_due:
                due += [self._take(s, now) for s in self._shapes.values()
                        if s.repeats and now - s.since >= self.interval_s]
                self._next_due = min((s.since + self.interval_s for s in self._shapes.values() if s.repeats),
                                     default=float("inf"))
        for summary in due:  # outside the lock: emitting passes through this filter again
            self._emit(summary)
        if entry is not None:
            return False
        if client is not None:  # confluent-kafka's line: say whose it is, without the thread's name
            record.msg, record.args = "librdkafka: %s [%s] %s", (facility, client, _THREAD.sub("", line))
        return True

    def flush(self) -> None:
        """Report every count not reported yet (at exit, or when a command gives up)."""
        now = self._clock()
        with self._lock:
            due = [self._take(s, now) for s in self._shapes.values() if s.repeats]
            self._next_due = float("inf")
        for summary in due:
            self._emit(summary)

    def _take(self, entry: _Shape, now: float) -> _Summary:
        summary = _Summary(entry.text, entry.level, entry.repeats, now - entry.since)
        entry.repeats, entry.since = 0, now
        return summary

    def _emit(self, summary: _Summary) -> None:
        times = "time" if summary.repeats == 1 else "times"
        # Lines a client queued and a single poll served arrive together: no window to speak of.
        window = f" in the last {_seconds(summary.window_s)}" if summary.window_s >= 1 else ""
        record = self.logger.makeRecord(
            self.logger.name, summary.level, "(librdkafka)", 0, "librdkafka: %s repeated %d more %s%s",
            (summary.text, summary.repeats, times, window), None, extra={_SUMMARY_MARK: True})
        self.logger.handle(record)


def _parts(record: logging.LogRecord) -> tuple[str, str | None, str]:
    """(facility, client, line) of a confluent-kafka record; ("", None, the message) of any other."""
    args = record.args
    if (record.msg == _CONFLUENT_FORMAT and isinstance(args, tuple) and len(args) == 3
            and all(isinstance(a, str) for a in args)):
        return str(args[0]), str(args[1]), str(args[2])
    return "", None, record.getMessage()


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


@functools.cache
def librdkafka_log() -> LibrdkafkaLog:
    """This process's summary of librdkafka's log, installed on the ``weir.librdkafka`` logger on first use and
    flushed at exit."""
    summary = LibrdkafkaLog.on(logging.getLogger(LOGGER_NAME))
    atexit.register(summary.flush)
    return summary


def with_log(conf: dict[str, Any]) -> dict[str, Any]:
    """``conf`` with librdkafka's log going to the summarised ``weir.librdkafka`` logger, unless it names a logger
    of its own."""
    return {"logger": librdkafka_log().logger, **conf}


def flush_librdkafka_log() -> None:
    """Report the repeats counted so far, before a command's last word."""
    librdkafka_log().flush()
