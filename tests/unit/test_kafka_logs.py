"""librdkafka's own log, summarised: the first line of each shape, then counts, never the stream."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from apps.processes import free_port
from weir.kafka.logs import LOGGER_NAME, LibrdkafkaLog, librdkafka_log, shape, suppressed, with_log

REFUSED = ("[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: "
           "Connection refused (after {ms}ms in state CONNECT{more})")


def refused(ms: int = 0, identical: int = 0) -> str:
    return REFUSED.format(ms=ms, more=f", {identical} identical error(s) suppressed" if identical else "")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"test.librdkafka.{uuid.uuid4().hex}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    log.handlers.clear()
    log.filters.clear()


@pytest.fixture
def lines(logger: logging.Logger) -> Lines:
    handler = Lines()
    logger.addHandler(handler)
    return handler


def rdkafka(logger: logging.Logger, line: str, *, level: int = logging.ERROR, facility: str = "FAIL",
            client: str = "rdkafka#producer-1") -> None:
    """What confluent-kafka's log callback does with a line of librdkafka's."""
    logger.log(level, "%s [%s] %s", facility, client, line)


def test_the_first_line_passes_with_whose_it_is_and_identical_shapes_are_only_counted(
        logger: logging.Logger, lines: Lines) -> None:
    clock = Clock()
    LibrdkafkaLog.on(logger, clock=clock)
    rdkafka(logger, refused())
    for i in range(99):
        clock.now += 0.05
        rdkafka(logger, refused(ms=i % 3), client=f"rdkafka#producer-{1 + i % 2}")
    assert lines.messages == ["librdkafka: FAIL [rdkafka#producer-1] 127.0.0.1:1/bootstrap: Connect to "
                              "ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)"]
    assert lines.records[0].levelno == logging.ERROR


def test_a_summary_reports_the_repeats_once_per_interval_and_counts_what_librdkafka_suppressed(
        logger: logging.Logger, lines: Lines) -> None:
    clock = Clock()
    LibrdkafkaLog.on(logger, clock=clock, interval_s=60)
    rdkafka(logger, refused())
    for _ in range(10):
        clock.now += 5
        rdkafka(logger, refused(ms=3))
    clock.now += 10  # 60 s after the first line
    rdkafka(logger, refused(ms=1, identical=57))
    assert lines.messages[1:] == [
        "librdkafka: FAIL 127.0.0.1:1: Connect to ipv4#127.0.0.1:1 failed: Connection refused "
        "(after Nms in state CONNECT) repeated 68 more times in the last 60 s"]  # 10 + 1 + 57 suppressed
    assert lines.records[1].levelno == logging.ERROR
    for _ in range(5):  # within the next interval: counted, not reported
        clock.now += 11
        rdkafka(logger, refused())
    assert len(lines.records) == 2
    clock.now += 5
    rdkafka(logger, refused())
    assert lines.messages[2].endswith("repeated 6 more times in the last 60 s")


def test_flush_reports_what_is_pending_and_nothing_twice(logger: logging.Logger, lines: Lines) -> None:
    clock = Clock()
    summary = LibrdkafkaLog.on(logger, clock=clock)
    summary.flush()
    rdkafka(logger, refused())
    summary.flush()  # only the first line so far: nothing repeated
    assert len(lines.records) == 1
    for _ in range(3):
        rdkafka(logger, refused())  # served together by one poll: no window worth naming
    summary.flush()
    assert lines.messages[1].endswith("(after Nms in state CONNECT) repeated 3 more times")
    summary.flush()
    clock.now += 12.3
    rdkafka(logger, refused())
    summary.flush()
    assert lines.messages[2:] == [lines.messages[1].replace("3 more times", "1 more time in the last 12 s")]
    assert len(lines.records) == 3


def test_distinct_shapes_are_separate(logger: logging.Logger, lines: Lines) -> None:
    summary = LibrdkafkaLog.on(logger, clock=Clock())
    other_broker = refused().replace("127.0.0.1:1", "127.0.0.1:2")
    timed_out = "[thrd:b1:9092/1]: b1:9092/1: Timed out 3 in-flight, 0 retry-enqueued, 0 out-queue requests"
    for _ in range(3):
        rdkafka(logger, refused())
        rdkafka(logger, refused(), level=logging.WARNING)
        rdkafka(logger, refused(), facility="ERROR")
        rdkafka(logger, other_broker)
        rdkafka(logger, timed_out, facility="REQTMOUT", client="rdkafka#consumer-2")
    assert len(lines.records) == 5
    summary.flush()
    repeats = lines.messages[5:]
    assert len(repeats) == 5 and all(m.endswith("repeated 2 more times") for m in repeats)
    assert "librdkafka: REQTMOUT b1:9092: Timed out N in-flight, N retry-enqueued, N out-queue requests " \
           "repeated 2 more times" in repeats
    assert [r.levelno for r in lines.records[5:]].count(logging.WARNING) == 1


def test_other_summaries_fall_due_with_any_line(logger: logging.Logger, lines: Lines) -> None:
    clock = Clock()
    LibrdkafkaLog.on(logger, clock=clock, interval_s=60)
    rdkafka(logger, refused())
    rdkafka(logger, refused())
    clock.now += 61
    rdkafka(logger, "[thrd:main]: 1/1 brokers are down", facility="ERROR")
    assert lines.messages[1:] == [
        "librdkafka: FAIL 127.0.0.1:1: Connect to ipv4#127.0.0.1:1 failed: Connection refused "
        "(after Nms in state CONNECT) repeated 1 more time in the last 61 s",
        "librdkafka: ERROR [rdkafka#producer-1] 1/1 brokers are down"]


def test_the_shape_of_a_line() -> None:
    assert shape(refused(ms=12, identical=57)) == ("127.0.0.1:1: Connect to ipv4#127.0.0.1:1 failed: "
                                                   "Connection refused (after Nms in state CONNECT)")
    assert suppressed(refused(identical=57)) == 57 and suppressed(refused()) == 0
    assert shape("sasl_ssl://b-1.kafka:9096/12: Disconnected (after 600012ms in state UP)") == \
        "sasl_ssl://b-1.kafka:9096: Disconnected (after Nms in state UP)"
    assert shape("Fetch topic t-3 [2] at offset -1 (v4) took 1.5s") == \
        "Fetch topic t-3 [N] at offset N (v4) took Ns"
    assert shape("10.0.0.7:9092/3: ApiVersionRequest failed") == "10.0.0.7:9092: ApiVersionRequest failed"


def test_lines_from_many_threads_are_counted_exactly(logger: logging.Logger, lines: Lines) -> None:
    summary = LibrdkafkaLog.on(logger, clock=Clock())

    def log_500() -> None:
        for _ in range(500):
            rdkafka(logger, refused())

    threads = [threading.Thread(target=log_500) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary.flush()
    assert len(lines.records) == 2 and lines.messages[1].endswith(f"repeated {8 * 500 - 1} more times")


def test_every_client_logs_to_the_one_summarised_logger() -> None:
    own = logging.getLogger("elsewhere")
    assert with_log({"bootstrap.servers": "b:9092"}) == {"logger": logging.getLogger(LOGGER_NAME),
                                                         "bootstrap.servers": "b:9092"}
    assert with_log({"logger": own})["logger"] is own
    assert librdkafka_log() is librdkafka_log()
    assert logging.getLogger(LOGGER_NAME).filters.count(librdkafka_log()) == 1


def test_a_real_client_at_a_dead_port_logs_one_line_and_a_count(logger: logging.Logger, lines: Lines) -> None:
    """confluent-kafka calls the logger as the filter expects ("%s [%s] %s"), from poll."""
    served: list[str] = []  # every line librdkafka logged

    def count(record: logging.LogRecord) -> bool:
        if record.msg == "%s [%s] %s" and isinstance(record.args, tuple):
            served.append(str(record.args[2]))
        return True

    logger.addFilter(count)  # before the summary, which drops the repeats
    summary = LibrdkafkaLog.on(logger)
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "logger": logger,
                         "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 20})
    deadline = time.monotonic() + 10
    while len(served) < 3 and time.monotonic() < deadline:
        producer.poll(0.1)
    summary.flush()
    assert len(served) >= 3
    assert len(lines.records) == 2, lines.messages
    assert lines.messages[0].startswith("librdkafka: FAIL [rdkafka#producer-") and "refused" in lines.messages[0]
    repeats = len(served) - 1 + sum(suppressed(line) for line in served[1:])
    assert f"repeated {repeats} more times" in lines.messages[1]
