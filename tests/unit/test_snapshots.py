"""Data versions: a snapshot reads back to the same records, and a changed file or manifest is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from apps.snapshots import DATA, MANIFEST, Manifest, read_snapshot, write_snapshot
from streams.features import feature_vector
from weir.contract.records import AttributeValue, FeatureVector, Label
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import FEATURES
from weir.errors import ConfigError
from weir.kafka.ranges import TopicRange
from weir.settings import Settings


def _range(settings: Settings, catalog: SchemaCatalog) -> TopicRange:
    """Six events with numbers, flags and categories (one-hot encoded), some missing; labels of four kinds."""
    serde = topic_serde(catalog, settings, FEATURES)
    attributes: list[dict[str, AttributeValue]] = [
        {"amount": 1.5, "plan": "basic", "vip": True, "code": 1},
        {"amount": 2.25, "plan": "premium", "vip": False, "code": 2},
        {"amount": 0.1 + 0.2, "plan": "basic", "vip": None, "code": 3},
        {"amount": -4.0, "vip": True, "code": None},
        {"amount": 1e-300, "plan": "basic", "vip": False, "code": 5},
        {"amount": 7.0, "plan": "x", "vip": True, "code": 6},
    ]
    vectors: list[FeatureVector] = [
        feature_vector({"event_id": f"e{i}", "entity_id": f"c{i % 2}", "event_time": 1_000 + i, "source": "t",
                        "attributes": a}) for i, a in enumerate(attributes)]
    labels: dict[str, tuple[int, Label]] = {"e0": (2_000, True), "e1": (2_001, 0), "e3": (2_003, 2.5),
                                            "e5": (2_005, "churned")}
    encoded = {v["event_id"]: serde.encode(v) for v in vectors}
    return TopicRange(vectors, labels, {"features_read": 6}, {"t.features": {0: (10, 15)}}, encoded)


def test_a_snapshot_reads_back_to_the_same_records_and_data_version(tmp_path: Path, catalog: SchemaCatalog) -> None:
    settings = Settings(home=tmp_path / "home")
    span = _range(settings, catalog)
    manifest = write_snapshot(span, tmp_path / "v1", since_ms=0, until_ms=5_000)
    again, read = read_snapshot(tmp_path / "v1", settings, catalog)
    assert again.vectors == span.vectors and again.labels == span.labels
    assert [type(v) for v in again.labels.values()] == [type(v) for v in span.labels.values()]
    assert again.content_hash() == span.content_hash() == manifest.data_version == read.data_version
    assert (manifest.events, manifest.labels, manifest.topics) == (6, 4, {"t.features": {"0": [10, 15]}})
    assert read == Manifest.from_json(manifest.to_json(), "m")
    people = pd.read_parquet(tmp_path / "v1" / DATA)  # the readable copy
    assert people["feature.amount"].tolist()[:2] == [1.5, 2.25] and people["feature.plan=premium"].tolist()[1] == 1.0
    assert pd.isna(people["feature.plan=premium"].tolist()[0])  # e0 has no such feature
    assert people["label_json"].tolist()[:2] == ["true", "0"] and pd.isna(people["label_json"][2])


def test_a_changed_file_a_changed_manifest_and_an_overwrite_are_refused(tmp_path: Path,
                                                                        catalog: SchemaCatalog) -> None:
    settings = Settings(home=tmp_path / "home")
    span = _range(settings, catalog)
    write_snapshot(span, tmp_path / "v1", since_ms=0, until_ms=5_000)
    with pytest.raises(ConfigError, match="immutable"):
        write_snapshot(span, tmp_path / "v1", since_ms=0, until_ms=5_000)

    changed = pd.read_parquet(tmp_path / "v1" / DATA)
    changed.loc[0, "label_json"] = "false"
    changed.to_parquet(tmp_path / "v1" / DATA, index=False)
    with pytest.raises(ConfigError, match="SHA-256 differs"):
        read_snapshot(tmp_path / "v1", settings, catalog)

    manifest = json.loads((tmp_path / "v1" / MANIFEST).read_text())  # a file and manifest changed together
    manifest["file_sha256"] = hashlib.sha256((tmp_path / "v1" / DATA).read_bytes()).hexdigest()
    (tmp_path / "v1" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="do not hash to the manifest's data version"):
        read_snapshot(tmp_path / "v1", settings, catalog)

    (tmp_path / "v1" / MANIFEST).write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(ConfigError, match="format 99"):
        read_snapshot(tmp_path / "v1", settings, catalog)
