"""The records of the ``models`` topic: versions, routing decisions, metrics and snapshots, and their keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from weir.clock import now_ms
from weir.contract.serde import Record
from weir.errors import ConfigError
from weir.registry.factories import encode_params

if TYPE_CHECKING:
    pass


MODES = ("basic", "shadow", "canary")


PICKLE_FACTORY = "pickle"


def record_key(record: Record) -> str:
    """The compaction key of a ``models`` record: one per version, per routing decision, per version's metrics."""
    name, kind = record["model_name"], record["kind"]
    if kind == "ROUTING":
        return f"{name}:routing:{record['created_at']:013d}"
    if kind in ("METRICS", "SNAPSHOT"):
        return f"{name}:{record['version']}:{kind.lower()}"
    return f"{name}:{record['version']}"


def _record(name: str, kind: str, **fields: Any) -> Record:
    base_fields: Record = {
        "model_name": name, "kind": kind, "version": None, "status": None, "spec": None, "parent_version": None,
        "training_window": None, "routing": None, "metrics": {}, "counters": {}, "snapshot": None,
        "created_at": now_ms(), "note": None,
    }
    return {**base_fields, **fields}


def version_record(name: str, version: str, factory: str, params: dict[str, Any], *,
                   parent_version: str | None = None, training_window: tuple[int, int] | None = None,
                   pickled: bytes | None = None, note: str | None = None) -> Record:
    window = None if training_window is None else {"start_ms": training_window[0], "end_ms": training_window[1]}
    return _record(name, "VERSION", version=version,
                   spec={"factory": factory, "params": encode_params(params), "pickle": pickled},
                   parent_version=parent_version, training_window=window, note=note)


def routing_record(name: str, mode: str, champion: str, challengers: list[str] | None = None,
                   canary_percent: float = 0.0, *, note: str | None = None) -> Record:
    if mode not in MODES:
        raise ConfigError(f"routing mode must be one of {MODES}, not {mode!r}")
    return _record(name, "ROUTING", note=note, routing={
        "mode": mode, "champion": champion, "challengers": list(challengers or []), "canary_percent": canary_percent})


def metrics_record(name: str, version: str, metrics: dict[str, float], counters: dict[str, int]) -> Record:
    return _record(name, "METRICS", version=version, metrics=metrics, counters=counters)


def snapshot_record(name: str, version: str, model: bytes, learned: int) -> Record:
    return _record(name, "SNAPSHOT", version=version, snapshot=model, counters={"learned": learned})
