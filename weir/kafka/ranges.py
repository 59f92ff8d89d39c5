"""A range of the ``features`` and ``feedback`` topics, read and joined the same way every time.

Replay (`weir replay --source topics`) takes a range by event time; a
retraining takes the offsets its window's records sit at, so its lineage can
name them and anyone can read the same data again. Either way the rules are
the same: a feature vector sent twice (a stage that crashed and re-sent)
counts once; of several labels for one event the earliest by label time
counts; a label whose event is not in the range is left out and counted. The
result is ordered by (event time, event id), so how records fell on
partitions, or arrived, does not matter.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from tqdm import tqdm

from weir.contract.records import AttributeValue, FeatureVector, Label
from weir.contract.serde import AvroSerde, SchemaCatalog, topic_serde
from weir.contract.topics import FEATURES, FEEDBACK
from weir.errors import SerdeError
from weir.kafka.admin import ensure_reachable
from weir.kafka.reading import Positions, read_topic
from weir.settings import Settings

log = logging.getLogger("weir.ranges")

Labels = dict[str, tuple[int, Label]]  # event id -> (label time, label)
Spans = dict[int, tuple[int, int]]  # partition -> (first, last) offset of the records kept
R = TypeVar("R")


@dataclass
class TopicRange:
    """What a topic range holds, ready to replay or learn from, and what was left out of it."""

    vectors: list[FeatureVector]  # in (event time, event id) order
    labels: Labels  # the earliest label of each event
    counts: dict[str, int]  # read, outside the range, repeated, undecodable, labels without event
    spans: dict[str, Spans] = field(default_factory=dict)  # topic -> where the kept records sit
    encoded: dict[str, bytes] = field(default_factory=dict)  # event id -> its features record, as written

    def content_hash(self) -> str:
        """``sha256:<hex>`` of what the range holds, in its order: each event's id, its features record as
        written (schema id and Avro body) and its label with its time. The same data has the same hash wherever
        it is read from: the topics, or a snapshot of them."""
        digest = hashlib.sha256()
        for vector in self.vectors:
            event_id = vector["event_id"]
            label = self.labels.get(event_id)
            for part in (event_id.encode(), self.encoded[event_id], json.dumps(label).encode()):
                digest.update(len(part).to_bytes(8, "big"))
                digest.update(part)
        return f"sha256:{digest.hexdigest()}"

    def learning_order(self) -> list[tuple[dict[str, AttributeValue], Label]]:
        """The labelled events as a learner meets them: by (label time, event id), replay's order."""
        by_id = {v["event_id"]: v for v in self.vectors}
        due = sorted((time, event_id) for event_id, (time, _) in self.labels.items())
        return [(dict(by_id[event_id]["features"]), self.labels[event_id][1]) for _, event_id in due]

    def describe_spans(self) -> str:
        """``features[0] 12-2040; feedback[0] 30-2100``: the offsets to read the same data again."""
        return "; ".join(f"{topic}[{p}] {first}-{last}" for topic, spans in self.spans.items()
                         for p, (first, last) in sorted(spans.items())) or "-"


def read_topic_range(settings: Settings, catalog: SchemaCatalog, *, since_ms: int, until_ms: int,
                     progress: bool = True, timeout_s: float = 600.0, with_labels: bool = True) -> TopicRange:
    """The feature vectors with event time in [since, until) and (``with_labels``) their labels, read from the
    topics as they are, from their beginning. A cluster that does not answer fails within
    ``WEIR_CONNECT_TIMEOUT_S``, in one line."""
    ensure_reachable(settings)
    return _joined(settings, catalog, lambda v: since_ms <= v["event_time"] < until_ms, None, None,
                   progress=progress, timeout_s=timeout_s, with_labels=with_labels)


def read_offset_range(settings: Settings, catalog: SchemaCatalog, features: Positions, feedback: Positions, *,
                      timeout_s: float = 120.0) -> TopicRange:
    """The feature vectors at the ``features`` offsets and their labels at the ``feedback`` offsets (partition ->
    (first, last), both included)."""
    return _joined(settings, catalog, lambda v: True, features, feedback, progress=False, timeout_s=timeout_s,
                   with_labels=True)


def _joined(settings: Settings, catalog: SchemaCatalog, in_range: Callable[[FeatureVector], bool],
            features: Positions | None, feedback: Positions | None, *, progress: bool, timeout_s: float,
            with_labels: bool) -> TopicRange:
    vectors: dict[str, FeatureVector] = {}
    counts: Counter[str] = Counter()
    spans: dict[str, Spans] = {}
    serde = topic_serde(catalog, settings, FEATURES)
    encoded: dict[str, bytes] = {}
    for at, vector, data in _read(settings, serde, "features", features, counts, progress, timeout_s):
        if not in_range(vector):
            counts["features_outside_range"] += 1
        elif vector["event_id"] in vectors:
            counts["features_repeated"] += 1
        else:
            vectors[vector["event_id"]], encoded[vector["event_id"]] = vector, data
            widen(spans.setdefault(serde.topic, {}), at)
    labels: Labels = {}
    serde_feedback = topic_serde(catalog, settings, FEEDBACK)
    if with_labels:
        for at, label, _ in _read(settings, serde_feedback, "feedback", feedback, counts, progress, timeout_s):
            event_id, taken = label["event_id"], labels.get(label["event_id"])
            if event_id not in vectors:
                counts["feedback_without_event"] += 1
                continue
            widen(spans.setdefault(serde_feedback.topic, {}), at)
            if taken is not None:
                counts["feedback_repeated"] += 1
                labels[event_id] = min(taken, (label["label_time"], label["label"]), key=lambda t: t[0])
            else:
                labels[event_id] = (label["label_time"], label["label"])
    ordered = sorted(vectors.values(), key=lambda v: (v["event_time"], v["event_id"]))
    return TopicRange(ordered, labels, dict(counts), spans, encoded)


def widen(spans: Spans, at: tuple[int, int]) -> None:
    """Stretch ``spans`` to hold ``at`` (partition, offset)."""
    partition, offset = at
    first, last = spans.get(partition, (offset, offset))
    spans[partition] = (min(first, offset), max(last, offset))


def _read(settings: Settings, serde: AvroSerde[R], what: str, positions: Positions | None, counts: Counter[str],
          progress: bool, timeout_s: float) -> Iterator[tuple[tuple[int, int], R, bytes]]:
    """The decoded records of one topic (to its current end, or in ``positions``) with where each sits and its
    bytes; a record that does not decode is counted, logged and skipped."""
    with tqdm(desc=f"reading {serde.topic}", unit="rec", disable=not progress, dynamic_ncols=True) as bar:
        for msg in read_topic(settings, serde.topic, timeout_s=timeout_s, positions=positions):
            bar.update()
            counts[f"{what}_read"] += 1
            try:
                yield (msg.partition, msg.offset), serde.decode(msg.value), msg.value or b""
            except SerdeError as e:
                counts[f"{what}_undecodable"] += 1
                log.warning("%s[%d]@%d skipped: %s", serde.topic, msg.partition, msg.offset, e)
