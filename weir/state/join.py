"""The label join: feedback meets the features and predictions of its event, once.

Three streams carry the parts of one event's story, all keyed by entity and
so co-partitioned: ``features`` (what the models saw, point in time),
``predictions`` (what each version said) and ``feedback`` (what was true).
They arrive in any order. A ``PendingJoin`` holds the parts by event id until
the event is complete, hands it out exactly once, and accounts for every label:

* joined: features, the served prediction and the label met;
* duplicate: a label for an event that already has one;
* late: a label for an event whose parts expired unlabelled (the window passed);
* unmatched: a label that never met its event within the window, or whose
  event the front refused (``refuse``: it is on ``events.dlq``, never served);

so that ``received = joined + duplicate + late + unmatched + labels still
pending``. Windows are measured in stream time (the largest event or label
time seen), so a replay expires exactly as the original run did.

Memory stays bounded whatever rate x window is: the newest ``hot_events``
events wait in memory, older ones in the stage's ``StateStore`` file
(``weir.state.store``), behind its bounded page cache, and both are committed
with the snapshot that reflects them. Both are saved as plain data
(``PendingEvent.plain``), never as pickled Weir classes. A label delay short enough for the hot
tier costs no disk access. So is the memory of which events already joined or
expired (the last ``remember`` of them), which makes a repeated label a
duplicate and a label after its window late: on disk only.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from weir.contract.messages import InRecord
from weir.contract.records import FeatureVector, Feedback, Label, Prediction
from weir.state import pickling
from weir.state.seen import SeenIds
from weir.state.store import StateStore


@dataclass
class PendingEvent:
    """What has arrived so far for one event id."""

    event_id: str
    first_seen_ms: int
    features: FeatureVector | None = None
    predictions: dict[str, Prediction] = field(default_factory=dict)
    served_version: str | None = None
    label: Label | None = None
    has_label: bool = False
    label_time_ms: int = 0
    label_source: InRecord | None = None  # the feedback record as read, to route it on if it goes astray
    complete: bool = False  # joined: it can be learned
    features_at: tuple[int, int] | None = None  # (partition, offset) of the features record, for lineage

    def plain(self) -> dict[str, Any]:
        """This event as plain data, for saved state."""
        return {**{f: getattr(self, f) for f in _EVENT_FIELDS}, "label_source": _plain_source(self.label_source),
                "features_at": self.features_at}

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> PendingEvent:
        return cls(**{f: plain[f] for f in _EVENT_FIELDS}, label_source=_source(plain["label_source"]),
                   features_at=plain.get("features_at"))  # none in state saved before it was kept


_EVENT_FIELDS = ("event_id", "first_seen_ms", "features", "predictions", "served_version", "label", "has_label",
                 "label_time_ms", "complete")


def _plain_source(record: InRecord | None) -> tuple[Any, ...] | None:
    return None if record is None else (record.topic, record.partition, record.offset, record.timestamp_ms,
                                        record.key, record.value, record.headers)


def _source(plain: tuple[Any, ...] | None) -> InRecord | None:
    return None if plain is None else InRecord(*plain)


@dataclass
class JoinCounters:
    received: int = 0
    joined: int = 0
    duplicate: int = 0
    late: int = 0
    unmatched: int = 0
    unlabelled: int = 0  # events whose label never came within the window


@dataclass(frozen=True)
class Stray:
    """A label that will not be learned (``late``, ``unmatched``, its event ``refused`` by the front,
    ``unlearnable`` by some version's model, or stamped ``before-event``), with the record it came in, its time and,
    for the last two, why."""

    kind: Literal["late", "unmatched", "refused", "unlearnable", "before-event"]
    event_id: str
    source: InRecord | None
    label_time_ms: int
    why: str = ""


_TABLES = (
    "CREATE TABLE IF NOT EXISTS join_pending (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, "
    "first_seen INTEGER NOT NULL, has_label INTEGER NOT NULL, event BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS join_pending_labelled ON join_pending (has_label) WHERE has_label",
    "CREATE TABLE IF NOT EXISTS join_done (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, "
    "outcome INTEGER NOT NULL)",
)


# join_done.outcome: the event joined; its parts left the window unlabelled; the front refused it (not served)
JOINED, EXPIRED, REFUSED = 0, 1, 2


NEW, HOT, SPILLED = 0, 1, 2  # where an event's parts are: nowhere yet, in memory, in the state file


_EXPIRE_PAGE = 256


class PendingJoin:
    """Joins label + served prediction (+ features when ``needs_features``) per event id.

    Events wait in arrival order: the ``hot_events`` newest in memory, the
    older ones spilled to the store. Every spilled event arrived before every
    hot one, so the two together are one queue, oldest first, for ``expire``.
    """

    def __init__(self, *, window_ms: int, needs_features: bool, hot_events: int = 10_000, remember: int = 500_000,
                 store: StateStore | None = None) -> None:
        self.window_ms = window_ms
        self.needs_features = needs_features
        self.hot_events = hot_events
        self.remember = remember
        self.store = store or StateStore(None)
        for table in _TABLES:
            self.store.db.execute(table)
        self._stored = SeenIds(row[0] for row in self.store.db.execute(
            "SELECT event_id FROM join_done UNION ALL SELECT event_id FROM join_pending"))
        self.counters = JoinCounters()
        self.stream_time_ms = 0
        self.strays: list[Stray] = []  # drained by the caller
        self._hot: OrderedDict[str, PendingEvent] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hot) + self._count("SELECT count(*) FROM join_pending")

    @property
    def labels_pending(self) -> int:
        hot = sum(1 for p in self._hot.values() if p.has_label)
        return hot + self._count("SELECT count(*) FROM join_pending WHERE has_label")

    def state(self) -> dict[str, Any]:
        """What lives in memory, as plain data; the spilled parts are in the store and commit with it."""
        return {"counters": asdict(self.counters), "stream_time_ms": self.stream_time_ms,
                "strays": [(s.kind, s.event_id, _plain_source(s.source), s.label_time_ms) for s in self.strays],
                "hot": [event.plain() for event in self._hot.values()]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.counters, self.stream_time_ms = JoinCounters(**state["counters"]), state["stream_time_ms"]
        self.strays = [Stray(kind, event_id, _source(source), time) for kind, event_id, source, time in state["strays"]]
        self._hot = OrderedDict((plain["event_id"], PendingEvent.from_plain(plain)) for plain in state["hot"])

    def add_features(self, vector: FeatureVector, at: tuple[int, int] | None = None) -> PendingEvent | None:
        """The event, if these features completed it; ``at``: the (partition, offset) they were read at."""
        if self._served_after_all(vector["event_id"], vector["event_time"]) == JOINED:
            return None
        pending, where = self._slot(vector["event_id"], vector["event_time"])
        pending.features, pending.features_at = vector, at
        return self._settle(pending, where)

    def add_prediction(self, prediction: Prediction) -> PendingEvent | None:
        """The event, if this prediction completed it."""
        if self._served_after_all(prediction["event_id"], prediction["event_time"]) == JOINED:
            return None
        pending, where = self._slot(prediction["event_id"], prediction["event_time"])
        pending.predictions[prediction["model_version"]] = prediction
        if prediction["served"]:
            pending.served_version = prediction["model_version"]
        return self._settle(pending, where)

    def add_feedback(self, feedback: Feedback, source: InRecord | None = None) -> PendingEvent | None:
        """The event, if this label was taken (``complete`` says whether it joined already); ``None`` for a
        duplicate or a late label."""
        self.counters.received += 1
        event_id, label_time = feedback["event_id"], feedback["label_time"]
        outcome = self._done(event_id, label_time)
        if outcome == JOINED:
            self.counters.duplicate += 1
            return None
        if outcome == EXPIRED:
            self.counters.late += 1
            self.strays.append(Stray("late", event_id, source, label_time))
            return None
        if outcome == REFUSED:
            self.counters.unmatched += 1
            self.strays.append(Stray("refused", event_id, source, label_time))
            return None
        pending, where = self._slot(event_id, label_time)
        if pending.has_label:
            self.counters.duplicate += 1
            return None
        if label_time - pending.first_seen_ms > self.window_ms:  # its event left the window, swept or not
            self._drop(event_id, where)
            self._remember(event_id, EXPIRED)
            self.counters.late += 1
            self.strays.append(Stray("late", event_id, source, label_time))
            return None
        pending.label, pending.has_label, pending.label_time_ms = feedback["label"], True, label_time
        pending.label_source = source
        self._settle(pending, where)
        return pending

    def expire(self) -> list[PendingEvent]:
        """Let go of parts older than the window, oldest first, up to the first that is not.

        Returns the labelled events that have their features but never saw a
        served prediction (the serve stage dead-lettered them): the models can
        still learn from those. Labels without features become unmatched
        strays; features without a label are remembered as expired, so their
        label, if it ever comes, is recognised as late.
        """
        horizon = self.stream_time_ms - self.window_ms
        learnable: list[PendingEvent] = []
        db = self.store.db
        head = db.execute("SELECT first_seen FROM join_pending ORDER BY seq LIMIT 1").fetchone()
        if head is not None and head[0] >= horizon:  # the oldest waits on: nothing expires (the usual case)
            return learnable
        while head is not None:  # the spilled events first: they are the oldest
            page = db.execute("SELECT seq, event_id, first_seen, has_label FROM join_pending ORDER BY seq LIMIT ?",
                              (_EXPIRE_PAGE,)).fetchall()
            gone = page[:next((i for i, row in enumerate(page) if row[2] >= horizon), len(page))]
            for _, event_id, _, has_label in gone:
                labelled = self._spilled(event_id) if has_label else None
                if labelled is not None:
                    self._expire_labelled(labelled, learnable)
                else:
                    self._expire_unlabelled(event_id)
            if gone:
                db.execute("DELETE FROM join_pending WHERE seq <= ?", (gone[-1][0],))
            if len(gone) < len(page):
                return learnable
            if len(page) < _EXPIRE_PAGE:
                break
        while self._hot:
            oldest = next(iter(self._hot.values()))
            if oldest.first_seen_ms >= horizon:
                break
            del self._hot[oldest.event_id]
            if oldest.has_label:
                self._expire_labelled(oldest, learnable)
            else:
                self._expire_unlabelled(oldest.event_id)
        return learnable

    def _expire_labelled(self, event: PendingEvent, learnable: list[PendingEvent]) -> None:
        if event.features is not None:
            self._remember(event.event_id, JOINED)
            self.counters.joined += 1
            event.complete = True
            learnable.append(event)
        else:
            self.counters.unmatched += 1
            self.strays.append(Stray("unmatched", event.event_id, event.label_source, event.label_time_ms))

    def _expire_unlabelled(self, event_id: str) -> None:
        self.counters.unlabelled += 1
        self._remember(event_id, EXPIRED)

    def waiting(self, event_id: str) -> PendingEvent | None:
        """The parts of ``event_id`` still waiting here, if any (a look: nothing moves)."""
        pending = self._hot.get(event_id)
        return pending if pending is not None else self._spilled(event_id)

    def give_up(self, event_id: str) -> bool:
        """Let a label go whose event has not come (its features never seen): it becomes an unmatched stray now,
        not when its window ends, and a later part of that event counts as late. False if there is no such
        label."""
        pending, where = self._hot.get(event_id), HOT
        if pending is None:
            pending, where = self._spilled(event_id), SPILLED
        if pending is None or not pending.has_label or pending.features is not None:
            return False
        self._drop(event_id, where)
        self._remember(event_id, EXPIRED)
        self.counters.unmatched += 1
        self.strays.append(Stray("unmatched", event_id, pending.label_source, pending.label_time_ms))
        return True

    def refuse(self, event_id: str) -> Stray | None:
        """The front refused ``event_id`` (validation dead-lettered it): it will never be served, so its label can
        never join. A label waiting for it becomes a ``refused`` stray now (returned: the caller stops holding it),
        and one that comes later becomes one as it comes. An event whose features came after all (sent again,
        fixed, and served) joins as any other."""
        pending, where = self._hot.get(event_id), HOT
        if pending is None:
            pending, where = self._spilled(event_id), SPILLED
        if pending is not None and pending.features is not None:
            return None  # served after all (or refused by the serve stage, which wrote its features: learnable)
        self._remember(event_id, REFUSED)
        if pending is None or not pending.has_label:
            return None
        self._drop(event_id, where)
        self.counters.unmatched += 1
        stray = Stray("refused", event_id, pending.label_source, pending.label_time_ms)
        self.strays.append(stray)
        return stray

    def take_strays(self) -> list[Stray]:
        strays, self.strays = self.strays, []
        return strays

    # --- where the parts wait ------------------------------------------------------------

    def _count(self, query: str) -> int:
        return int(self.store.db.execute(query).fetchone()[0])

    def _done(self, event_id: str, time_ms: int) -> int | None:
        """Advance stream time; how ``event_id`` left the join before, if it did (JOINED or EXPIRED)."""
        self.stream_time_ms = max(self.stream_time_ms, time_ms)
        if event_id not in self._stored:
            return None
        row = self.store.db.execute("SELECT outcome FROM join_done WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else int(row[0])

    def _served_after_all(self, event_id: str, time_ms: int) -> int | None:
        """``_done`` for a part of a served event: a refusal noted earlier no longer holds (the event was sent
        again and served), so its label may join."""
        outcome = self._done(event_id, time_ms)
        if outcome == REFUSED:
            self.store.db.execute("DELETE FROM join_done WHERE event_id = ?", (event_id,))
            return None
        return outcome

    def _spilled(self, event_id: str) -> PendingEvent | None:
        if event_id not in self._stored:
            return None
        row = self.store.db.execute("SELECT event FROM join_pending WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else PendingEvent.from_plain(pickling.loads(row[0]))

    def _slot(self, event_id: str, time_ms: int) -> tuple[PendingEvent, int]:
        """The parts of ``event_id`` so far, and where they are (NEW, HOT or SPILLED)."""
        pending = self._hot.get(event_id)
        if pending is not None:
            return pending, HOT
        pending = self._spilled(event_id)
        return (PendingEvent(event_id, time_ms), NEW) if pending is None else (pending, SPILLED)

    def _settle(self, pending: PendingEvent, where: int) -> PendingEvent | None:
        """Hand the event out if it is complete; otherwise keep it where it waits (a new one: in memory)."""
        ready = pending.has_label and pending.served_version is not None
        if self.needs_features:
            ready = ready and pending.features is not None
        if ready:
            self._drop(pending.event_id, where)
            self._remember(pending.event_id, JOINED)
            self.counters.joined += 1
            pending.complete = True
            return pending
        if where == NEW:
            self._hot[pending.event_id] = pending
            while len(self._hot) > self.hot_events:
                self._spill(self._hot.popitem(last=False)[1])
        elif where == SPILLED:
            self.store.db.execute("UPDATE join_pending SET has_label = ?, event = ? WHERE event_id = ?",
                                  (pending.has_label, _pickled(pending), pending.event_id))
        return None

    def _spill(self, pending: PendingEvent) -> None:
        """The oldest hot event goes to the store, behind every event spilled before it."""
        self._stored.add(pending.event_id)
        self.store.db.execute("INSERT INTO join_pending (event_id, first_seen, has_label, event) VALUES (?, ?, ?, ?)",
                              (pending.event_id, pending.first_seen_ms, pending.has_label, _pickled(pending)))

    def _drop(self, event_id: str, where: int) -> None:
        if where == HOT:
            del self._hot[event_id]
        elif where == SPILLED:
            self.store.db.execute("DELETE FROM join_pending WHERE event_id = ?", (event_id,))

    def _remember(self, event_id: str, outcome: int) -> None:
        """Note how ``event_id`` left; forget the oldest beyond ``remember`` (checked every 4,096 notes)."""
        db = self.store.db
        self._stored.add(event_id)
        seq = db.execute("INSERT OR REPLACE INTO join_done (event_id, outcome) VALUES (?, ?)",
                         (event_id, outcome)).lastrowid
        if seq is not None and seq % 4096 == 0:
            db.execute("DELETE FROM join_done WHERE seq <= ?", (seq - self.remember,))


def _pickled(pending: PendingEvent) -> bytes:
    return pickling.dumps(pending.plain())
