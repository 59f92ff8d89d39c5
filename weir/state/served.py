"""The front's memory of the event ids it served, per ``events.raw`` partition, over a horizon of event time.

An event id produced twice (a producer's retry, a replayed file, the same id
over HTTP and on the stream) must be served once. The memory holds every id
served within ``WEIR_DEDUPE_HORIZON_MS`` of its partition's newest event
time: more than memory should hold (a day at 2,000 events/s is 170 million
ids), so it lives in a SQLite file on local disk behind a bounded page cache.

The file is a cache; the truth is the changelog, ``events.served``: the front
writes each id it serves there, to the partition number of the ``events.raw``
partition it came on, in the same transaction as the served prediction. Ids
enter the file only once that transaction has committed (``seal`` then
``committed``), so an aborted batch never leaves an id behind that was not
served. A checkpoint records, with the ids, the changelog offset below which
every change is in the file; on taking a partition (a restart, a rebalance),
the front reads that partition's changelog from its checkpoint, or from the
start when this file never had it, and is then exactly where the last
committed transaction left it.

A deployment runs several fronts, and a machine may run several: each process
takes the first of ``<stage>-<n>.db`` no other process holds, so a restarted
front finds its own file again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import ServedEvent
from weir.contract.serde import AvroSerde
from weir.errors import SerdeError
from weir.state.store import StateLocked, StateStore

log = logging.getLogger("weir.state")

_TABLES = (
    "CREATE TABLE IF NOT EXISTS served (partition INTEGER NOT NULL, event_id TEXT NOT NULL, "
    "event_time INTEGER NOT NULL, PRIMARY KEY (partition, event_id)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS served_by_time ON served (partition, event_time)",
)

Pending = dict[tuple[int, str], int]  # (partition, event id) -> event time


class ServedIds:
    """Which event ids were served on the partitions this process owns, within the horizon."""

    def __init__(self, directory: Path | None, stage: str, changelog: AvroSerde[ServedEvent], *, horizon_ms: int,
                 cache_mb: int = 16) -> None:
        """``directory`` None: a private temporary file (tests, runs that keep nothing)."""
        self.serde = changelog
        self.changelog = changelog.topic
        self.horizon_ms = horizon_ms
        self.directory, self.stage, self.cache_mb = directory, stage, cache_mb
        self.checkpoints: dict[int, int] = {}
        self.newest: dict[int, int] = {}  # partition -> newest event time remembered
        # A private file until the runner first hands partitions over (a stage driven by hand keeps nothing).
        self.store = self._load(StateStore(None, cache_mb=cache_mb))
        self.on_disk = False
        self.owned: set[int] = set()
        self.pending: Pending = {}  # served in the batch being made
        self.sealed: Pending = {}  # served in the transaction being committed

    @property
    def path(self) -> Path | None:
        return self.store.path

    # --- ownership and recovery ----------------------------------------------------------------------------------

    def open(self, partitions: set[int]) -> dict[int, int]:
        """Take ``partitions``; the changelog offset each must be restored from (0: this file never had it)."""
        if not self.on_disk and self.directory is not None:
            self.store.close()
            self.store, self.on_disk = self._load(_open_free_slot(self.directory, self.stage, self.cache_mb)), True
            log.info("served event ids in %s: %s", self.store.path,
                     ", ".join(f"partition {p} to changelog offset {o}" for p, o in sorted(self.checkpoints.items()))
                     or "none yet")
        self.owned |= partitions
        return {p: self.checkpoints.get(p, 0) for p in partitions}

    def restore(self, partition: int, records: list[InRecord]) -> int:
        """Take records of ``partition``'s changelog, in order; how many. One that is not a served id (written by
        something else) is skipped and logged."""
        rows = []
        for record in records:
            try:
                rows.append((partition, (record.key or b"").decode(), self.serde.decode(record.value)["event_time"]))
            except (SerdeError, UnicodeDecodeError) as exc:
                log.error("%s[%d]@%d is not a served event id, skipped: %s", self.changelog, partition, record.offset,
                          exc)
        self.store.db.executemany("INSERT OR REPLACE INTO served VALUES (?, ?, ?)", rows)
        if rows:
            self.newest[partition] = max(self.newest.get(partition, 0), max(r[2] for r in rows))
        return len(rows)

    def close(self, partitions: set[int]) -> None:
        """Give up ``partitions`` (revoked, or the session failed): what no transaction committed is forgotten."""
        self.owned -= partitions
        self.pending = {k: t for k, t in self.pending.items() if k[0] not in partitions}
        self.sealed = {k: t for k, t in self.sealed.items() if k[0] not in partitions}

    # --- the batch path ------------------------------------------------------------------------------------------

    def seen(self, partition: int, event_id: str) -> bool:
        key = (partition, event_id)
        if key in self.pending or key in self.sealed:
            return True
        row = self.store.db.execute("SELECT event_time FROM served WHERE partition = ? AND event_id = ?",
                                    key).fetchone()
        return row is not None and row[0] >= self.newest.get(partition, 0) - self.horizon_ms

    def add(self, partition: int, event_id: str, event_time: int) -> OutRecord:
        """Remember ``event_id`` as served once its transaction commits; the changelog record to write in it."""
        self.pending[(partition, event_id)] = event_time
        return OutRecord(self.changelog, event_id.encode(), self.serde.encode({"event_time": event_time}),
                         partition=partition)

    def seal(self) -> None:
        """The ids served since the last seal are in the transaction now being committed."""
        self.sealed.update(self.pending)
        self.pending = {}

    def committed(self) -> None:
        """That transaction committed: its ids are remembered."""
        if not self.sealed:
            return
        self.store.db.executemany("INSERT OR REPLACE INTO served VALUES (?, ?, ?)",
                                  [(p, event_id, t) for (p, event_id), t in self.sealed.items()])
        for (p, _), t in self.sealed.items():
            if t > self.newest.get(p, 0):
                self.newest[p] = t
        self.sealed = {}

    def checkpoint(self, ends: dict[int, int]) -> None:
        """Every change of each partition below its changelog offset in ``ends`` is in the file: make the file
        durable with those offsets, and forget the ids older than the horizon."""
        self.checkpoints.update(ends)
        for p, newest in self.newest.items():
            self.store.db.execute("DELETE FROM served WHERE partition = ? AND event_time < ?",
                                  (p, newest - self.horizon_ms))
        self.store.commit(self._saved())

    def _load(self, store: StateStore) -> StateStore:
        for table in _TABLES:
            store.db.execute(table)
        saved = store.load() or {}
        self.checkpoints = {int(p): o for p, o in saved.get("checkpoints", {}).items()}
        self.newest = {int(p): t for p, t in saved.get("newest", {}).items()}
        return store

    def _saved(self) -> dict[str, Any]:
        return {"checkpoints": dict(self.checkpoints), "newest": dict(self.newest)}

    def count(self, partition: int) -> int:
        return int(self.store.db.execute("SELECT count(*) FROM served WHERE partition = ?", (partition,))
                   .fetchone()[0])

    def shut(self) -> None:
        """Release the file; changes since the last checkpoint are restored from the changelog next time."""
        self.store.close()


def _open_free_slot(directory: Path | None, stage: str, cache_mb: int) -> StateStore:
    """The first ``<stage>-<n>.db`` in ``directory`` no other process holds."""
    if directory is None:
        return StateStore(None, cache_mb=cache_mb)
    n = 0
    while True:
        try:
            return StateStore(directory / f"{stage}-{n}.db", cache_mb=cache_mb)
        except StateLocked:
            n += 1
