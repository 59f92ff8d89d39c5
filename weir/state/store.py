"""One SQLite file per stateful stage: its large state on disk, and snapshots that commit it atomically.

The learn stage's join holds every event's parts until its label comes: rate
x window of them, more than memory should hold. They live in tables of this
file, behind a bounded page cache, and every change since the last snapshot
stays in one open transaction. A snapshot writes the stage's small in-memory
state (models, metrics, sequencer) and the input offsets it reflects into the
same file and commits: the pending parts, the models and the offsets become
durable together, and a crash at any point leaves the file at the previous
snapshot (SQLite rolls the unfinished transaction back when it next opens).

SQLite is part of Python, transactional and bounded in memory, which is all
this needs; a key-value store (RocksDB) would need the atomic commit built on
top of it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from weir.errors import WeirError
from weir.state import pickling


class StateLocked(WeirError):
    """Another process holds this state file (two learners with one app id and state directory)."""


class StateStore:
    """A SQLite connection in one long write transaction, committed only by ``commit``."""

    def __init__(self, path: Path | None, cache_mb: int = 64) -> None:
        """``path`` None: a private temporary file, for runs that keep no state across restarts (replay, tests)."""
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path) if path is not None else "", isolation_level=None,
                                  check_same_thread=False, timeout=2.0)
        self.db.execute(f"PRAGMA cache_size = {-cache_mb * 1024}")
        if path is None:
            self.db.execute("PRAGMA journal_mode = OFF")  # nothing to recover: the file goes with the connection
            self.db.execute("PRAGMA synchronous = OFF")
        else:
            self.db.execute("PRAGMA journal_mode = WAL")
            # A crash never tears a commit (WAL); a power loss may lose the last ones, and the stage then re-reads
            # from an earlier snapshot's offsets, which gives the same state: no fsync per commit is needed.
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute(f"PRAGMA journal_size_limit = {cache_mb * 1024 * 1024}")  # the WAL shrinks back
        self.db.execute("CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB)")
        self._begin()

    def _begin(self) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")  # the write lock, held until the next commit
        except sqlite3.OperationalError as e:
            raise StateLocked(f"{self.path} is in use by another process ({e}); give each learner its own "
                              "WEIR_APP_ID or WEIR_STATE_DIR") from e

    def load(self) -> Any | None:
        """The state of the last commit, or None when nothing was ever committed; ``UnreadableState`` when the
        file holds a state this version cannot load (see ``weir.state.pickling``)."""
        row = self.db.execute("SELECT state FROM snapshot WHERE id = 1").fetchone()
        return None if row is None else pickling.loads(row[0])

    def commit(self, state: Any) -> None:
        """Make ``state`` and every table change since the last commit durable, as one."""
        self.db.execute("INSERT OR REPLACE INTO snapshot (id, state) VALUES (1, ?)",
                        (pickling.dumps(state),))
        self.db.execute("COMMIT")
        self._begin()

    def close(self) -> None:
        """Give up what was not committed and release the file."""
        self.db.close()
