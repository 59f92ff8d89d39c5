"""The learn stage's state file: pending join parts on disk, committed only with a snapshot, one owner."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from tests import support
from weir.contract.records import FeatureVector, Prediction
from weir.state.join import PendingJoin
from weir.state.store import StateLocked, StateStore


def features(i: int, t: int = 1_000) -> FeatureVector:
    return {"event_id": f"e{i}", "entity_id": f"c{i % 97}", "event_time": t,
            "features": {f"x{k}": float(i * k) for k in range(15)}, "feature_set_version": "fs1"}


def prediction(i: int, t: int = 1_000) -> Prediction:
    return support.prediction(f"e{i}", entity_id=f"c{i % 97}", event_time=t, version="v1", served=True,
                              predicted_label=True)


def test_what_no_snapshot_committed_is_gone_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "learn.db"
    store = StateStore(path)
    join = PendingJoin(window_ms=60_000, needs_features=True, hot_events=30, store=store)  # 70 spilled, 30 hot
    for i in range(100):
        join.add_features(features(i))
    store.commit({"offsets": {("features", 0): 100}, "join": join.state()})
    for i in range(100, 250):  # read after the snapshot, then the process dies
        join.add_features(features(i))
    assert len(join) == 250
    store.close()

    reopened = StateStore(path)
    restored = PendingJoin(window_ms=60_000, needs_features=True, hot_events=30, store=reopened)
    state = reopened.load()
    assert state is not None
    restored.load_state(state["join"])
    assert state["offsets"] == {("features", 0): 100} and len(restored) == 100
    for i in (7, 93):  # one spilled, one hot when the snapshot was taken
        restored.add_prediction(prediction(i))
        done = restored.add_feedback({"event_id": f"e{i}", "entity_id": f"c{i % 97}", "label": True,
                                      "label_time": 2_000})
        assert done is not None and done.complete and done.features is not None
        assert done.features["features"]["x3"] == 3.0 * i
    assert len(restored) == 98
    reopened.close()


def test_a_second_owner_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    first = StateStore(tmp_path / "learn.db")
    with pytest.raises(StateLocked, match="WEIR_APP_ID or WEIR_STATE_DIR"):
        StateStore(tmp_path / "learn.db")
    first.close()
    StateStore(tmp_path / "learn.db").close()  # free again once the owner is gone


def test_waiting_events_beyond_the_hot_tier_do_not_grow_python_memory(tmp_path: Path) -> None:
    """Rate x window parts wait in the file: 15,000 more waiting events of 15 features add nothing to the heap."""
    store = StateStore(tmp_path / "learn.db", cache_mb=1)
    join = PendingJoin(window_ms=60_000, needs_features=True, hot_events=1_000, store=store)

    def wait(events: range) -> None:
        for i in events:
            join.add_features(features(i))
            join.add_prediction(prediction(i))

    tracemalloc.start()
    try:
        wait(range(5_000))
        at_5k = tracemalloc.get_traced_memory()[0]
        wait(range(5_000, 20_000))
        grown = tracemalloc.get_traced_memory()[0] - at_5k
    finally:
        tracemalloc.stop()
    assert len(join) == 20_000
    assert grown < 300_000, f"15,000 more waiting events kept {grown} bytes of Python objects"
    store.close()
