"""The broker a benchmark runs on: the configured cluster, or the local one (stopped after if started here)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from weir.kafka import local as local_kafka
from weir.settings import Settings


@contextmanager
def running_broker() -> Iterator[Settings]:
    settings = Settings()
    state = local_kafka.up(settings)
    try:
        yield settings
    finally:
        if state.started_here:
            local_kafka.down(settings)
