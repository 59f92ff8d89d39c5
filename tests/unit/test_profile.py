"""Stored drift references: built from data, shipped as a file, and kept across a monitor's restarts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from apps.cli import cli
from streams.monitor.detectors import DistributionWatch
from streams.monitor.stage import MonitorStage
from weir.contract.messages import InRecord
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import FEATURES
from weir.errors import ConfigError
from weir.settings import Settings
from weir.stats.profile import (
    FIRST_EVENTS,
    FeatureProfiles,
    Reference,
    build_profile,
    fingerprint,
    load_profile,
    save_profile,
    starting_reference,
)

SETTINGS = Settings(drift_reference_events=2_000, drift_window=1_000, drift_check_every=250)


def values(mean: float, n: int, seed: int) -> list[dict[str, float | str]]:
    rng = random.Random(seed)
    return [{"x": rng.gauss(mean, 1.0), "plan": rng.choice("ab")} for _ in range(n)]


def firing(watch: DistributionWatch, rows: list[dict[str, float | str]]) -> int | None:
    """The row at which the first episode opened, if one did."""
    for i, row in enumerate(rows, 1):
        if any(t.status == "FIRING" for t in watch.add(row)):
            return i
    return None


def found(reference: Reference | None) -> FeatureProfiles:
    """The features of a reference the monitor starts from; a failure if it would start from none."""
    assert reference is not None, "no reference: the monitor would take its first events"
    return reference.features


def test_with_a_profile_a_drift_from_the_first_event_is_caught_without_it_it_becomes_the_normal() -> None:
    profile = build_profile(values(0.0, 5_000, seed=1))
    drifted = values(1.0, 4_000, seed=2)
    caught = firing(DistributionWatch(SETTINGS, profile), drifted)
    assert caught is not None and caught <= 1_500  # the first full live window
    assert firing(DistributionWatch(SETTINGS), drifted) is None  # its first 2,000 drifted values are the reference


def test_a_restarted_monitor_keeps_its_reference_instead_of_learning_the_drift(tmp_path: Path) -> None:
    kept = tmp_path / "monitor.reference.json"
    before = DistributionWatch(SETTINGS, on_reference=lambda f: save_profile(kept, f, origin=FIRST_EVENTS,
                                                                               source="test"))
    assert firing(before, values(0.0, 2_500, seed=3)) is None
    assert set(load_profile(kept)[0]) == {"x", "plan"}

    reference = starting_reference(None, kept)  # the process restarts just as the data drifts
    assert reference is not None and reference.origin == FIRST_EVENTS
    caught = firing(DistributionWatch(SETTINGS, reference.features), values(1.0, 3_000, seed=4))
    assert caught is not None and caught <= 1_500


def test_a_newly_configured_profile_wins_over_a_reference_kept_from_an_older_one(tmp_path: Path) -> None:
    old, new, kept = tmp_path / "old.json", tmp_path / "new.json", tmp_path / "kept.json"
    save_profile(old, build_profile(values(0.0, 1_000, seed=5)), origin="test", source="test")
    save_profile(new, build_profile(values(3.0, 1_000, seed=6)), origin="test", source="test")
    save_profile(kept, build_profile(values(0.5, 1_000, seed=7)), origin=fingerprint(old), source="monitor")
    assert found(starting_reference(old, kept)) == load_profile(kept)[0]  # kept descends from old: kept
    assert found(starting_reference(new, kept)) == load_profile(new)[0]  # another profile now: start from it
    assert starting_reference(None, kept) is None  # kept descends from a profile no longer configured


def test_a_file_that_is_not_a_profile_is_refused_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"features": {}}))
    with pytest.raises(ConfigError, match="bad.json is not a drift profile"):
        starting_reference(bad, None)
    with pytest.raises(ConfigError, match="cannot read the drift profile"):
        starting_reference(tmp_path / "missing.json", None)


def test_a_profile_with_the_wrong_number_of_bins_is_refused() -> None:
    profile = build_profile(values(0.0, 500, seed=8))
    profile["x"]["counts"] = profile["x"]["counts"][:-1]
    with pytest.raises(ValueError, match="the profile of x has"):
        DistributionWatch(SETTINGS, profile).add({"x": 0.0})


def test_the_profile_command_writes_what_the_monitor_reads(tmp_path: Path) -> None:
    out = tmp_path / "churn.json"
    result = CliRunner().invoke(cli, ["monitor", "profile", "--source", "churn", "--events", "3000", "--out",
                                      str(out)], prog_name="weir")
    assert result.exit_code == 0, result.output
    features, _ = load_profile(out)
    assert f"profiled {len(features)} features over 3000 events of churn" in result.output
    assert all(sum(p["counts"]) == 3_000 for p in features.values()) and len(features) >= 10
    assert found(starting_reference(out, tmp_path / "kept.json")) == features


def test_the_monitor_stage_keeps_its_reference_where_it_is_told(tmp_path: Path, catalog: SchemaCatalog) -> None:
    kept = tmp_path / "state" / "monitor.reference.json"
    stage = MonitorStage(SETTINGS, catalog, kept_reference=kept)
    serde = topic_serde(catalog, SETTINGS, FEATURES)
    batch = [InRecord(serde.topic, 0, i, 0, b"c", serde.encode(
        {"event_id": f"e{i}", "entity_id": "c", "event_time": i, "features": {"x": float(row["x"]), "plan=a": 1.0},
         "feature_set_version": "fs1"}), []) for i, row in enumerate(values(0.0, 2_000, seed=9))]
    assert not kept.exists()
    stage.process(batch)
    features, origin = load_profile(kept)
    assert origin == FIRST_EVENTS and sum(features["x"]["counts"]) == 2_000
    assert MonitorStage(SETTINGS, catalog, kept_reference=kept).monitor.data.reference == features


def test_the_kept_reference_keeps_stored_features_the_stream_has_not_shown_yet(tmp_path: Path) -> None:
    profile = build_profile([{**row, "rare": "x"} for row in values(0.0, 1_000, seed=10)])
    saved: list[FeatureProfiles] = []
    watch = DistributionWatch(SETTINGS, profile, on_reference=saved.append)
    for row in values(3.0, 6_000, seed=11):  # x drifts for good: the episode ends in a re-baseline
        watch.add(row)
    assert saved and all("rare" in s and s["rare"] == profile["rare"] for s in saved)
    assert saved[-1]["x"] != profile["x"]  # the re-based feature is kept as it is now
