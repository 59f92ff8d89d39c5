"""Data versions: a topic range written to Parquet with a manifest, read back to the same records bit for bit.

A snapshot folder holds ``data.parquet`` and ``manifest.json``. The Parquet
file has one row per event, in (event time, event id) order: its ids and
time, its features record exactly as the topic held it (``features_avro``:
schema id and Avro body, so decoding it again gives the same values), its
label as JSON with its label time (a label's type, bool, number or string,
survives), and a readable copy of every feature (``feature.<name>``, empty
where an event lacks it) for people and pandas. The manifest names what
was read (the topics, each partition's offset range, the schema ids), how
many records, and the content hash of the records (``TopicRange.
content_hash``), which a replay, an experiment or a registered version cites
as the data version, and which reading the snapshot checks again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import weir
from weir.clock import now_ms
from weir.contract.records import FeatureVector, Label
from weir.contract.serde import SchemaCatalog, schema_id_of, topic_serde
from weir.contract.topics import FEATURES
from weir.errors import ConfigError
from weir.kafka.ranges import TopicRange
from weir.settings import Settings

DATA, MANIFEST = "data.parquet", "manifest.json"
FORMAT = 1


@dataclass(frozen=True)
class Manifest:
    """What a snapshot holds and where it came from."""

    format: int
    data_version: str  # the content hash of the records
    created_at: int  # epoch ms
    weir_version: str
    since_ms: int
    until_ms: int
    topics: dict[str, dict[str, list[int]]]  # topic -> partition -> [first, last] offset of the records kept
    schema_ids: list[int]  # of the features records
    events: int
    labels: int
    counts: dict[str, int]  # what the read met: read, outside the range, repeated, undecodable...
    file_sha256: str  # of data.parquet, as written

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, origin: str) -> Manifest:
        try:
            document = json.loads(text)
            if document.get("format") != FORMAT:
                raise ConfigError(f"{origin} is snapshot format {document.get('format')!r}; this Weir reads {FORMAT}")
            return cls(**document)
        except (json.JSONDecodeError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{origin} is not a snapshot manifest: {exc}") from exc


def write_snapshot(span: TopicRange, out: Path, *, since_ms: int, until_ms: int) -> Manifest:
    """Write ``span`` to ``out`` (a folder, created; an existing snapshot there is refused, not overwritten)."""
    if (out / MANIFEST).exists() or (out / DATA).exists():
        raise ConfigError(f"{out} already holds a snapshot; data versions are immutable: choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    _frame(span).to_parquet(out / DATA, index=False)
    manifest = Manifest(
        format=FORMAT, data_version=span.content_hash(), created_at=now_ms(), weir_version=weir.__version__,
        since_ms=since_ms, until_ms=until_ms,
        topics={topic: {str(p): [first, last] for p, (first, last) in sorted(spans.items())}
                for topic, spans in span.spans.items()},
        schema_ids=sorted({schema_id_of(data) for data in span.encoded.values()}),
        events=len(span.vectors), labels=len(span.labels), counts=dict(sorted(span.counts.items())),
        file_sha256=_file_sha256(out / DATA))
    (out / MANIFEST).write_text(manifest.to_json())
    return manifest


def read_snapshot(folder: Path, settings: Settings, catalog: SchemaCatalog) -> tuple[TopicRange, Manifest]:
    """The records of a snapshot, checked against its manifest: the file's hash, then the records' own."""
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise ConfigError(f"{folder} holds no {MANIFEST}: not a snapshot (`weir data snapshot` writes one)")
    manifest = Manifest.from_json(manifest_path.read_text(), str(manifest_path))
    if _file_sha256(folder / DATA) != manifest.file_sha256:
        raise ConfigError(f"{folder / DATA} is not the file its manifest describes (its SHA-256 differs)")
    frame = pd.read_parquet(folder / DATA, columns=["event_id", "features_avro", "label_time", "label_json"])
    serde = topic_serde(catalog, settings, FEATURES)
    vectors: list[FeatureVector] = []
    encoded: dict[str, bytes] = {}
    labels: dict[str, tuple[int, Label]] = {}
    for event_id, data, label_time, label in frame.itertuples(index=False, name=None):
        vectors.append(serde.decode(data))
        encoded[event_id] = data
        if isinstance(label, str):
            labels[event_id] = (int(label_time), json.loads(label))
    spans = {topic: {int(p): (first, last) for p, (first, last) in parts.items()}
             for topic, parts in manifest.topics.items()}
    span = TopicRange(vectors, labels, manifest.counts, spans, encoded)
    if span.content_hash() != manifest.data_version:
        raise ConfigError(f"the records of {folder} do not hash to the manifest's data version")
    return span, manifest


def _frame(span: TopicRange) -> pd.DataFrame:
    taken = [_label(span, v) for v in span.vectors]
    columns: dict[str, Any] = {
        "event_id": [v["event_id"] for v in span.vectors],
        "entity_id": [v["entity_id"] for v in span.vectors],
        "event_time": pd.array([v["event_time"] for v in span.vectors], dtype="int64"),
        "features_avro": [span.encoded[v["event_id"]] for v in span.vectors],
        "label_time": pd.array([t for t, _ in taken], dtype="Int64"),
        "label_json": [label for _, label in taken],
    }
    for name in sorted({name for v in span.vectors for name in v["features"]}):  # a readable copy (doubles)
        columns[f"feature.{name}"] = [v["features"].get(name) for v in span.vectors]
    return pd.DataFrame(columns)


def _label(span: TopicRange, vector: FeatureVector) -> tuple[int | None, str | None]:
    taken = span.labels.get(vector["event_id"])
    return (None, None) if taken is None else (taken[0], json.dumps(taken[1]))


def _file_sha256(path: Path) -> str:
    if not path.exists():
        raise ConfigError(f"{path} is missing")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

