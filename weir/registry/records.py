"""The records of the ``models`` topic: versions, routing decisions, metrics and snapshots, and their keys."""

from __future__ import annotations

from typing import Any

from weir.clock import now_ms
from weir.contract.records import ModelRecord, RecordKind
from weir.errors import ConfigError
from weir.registry.factories import encode_params
from weir.registry.routing import MODES

PICKLE_FACTORY = "pickle"


def record_key(record: ModelRecord) -> str:
    """The compaction key of a ``models`` record: one per version, per routing decision, per version's metrics."""
    name, kind = record["model_name"], record["kind"]
    if kind == "ROUTING":
        return f"{name}:routing:{record['created_at']:013d}"
    if kind in ("METRICS", "SNAPSHOT"):
        return f"{name}:{record['version']}:{kind.lower()}"
    return f"{name}:{record['version']}"


def _record(name: str, kind: RecordKind, *, version: str | None = None, note: str | None = None,
            actor: str | None = None, evidence: dict[str, str] | None = None) -> ModelRecord:
    return {
        "model_name": name, "kind": kind, "version": version, "status": None, "spec": None, "parent_version": None,
        "training_window": None, "routing": None, "metrics": {}, "counters": {}, "snapshot": None,
        "created_at": now_ms(), "note": note, "signature": None, "actor": actor,
        "evidence": dict(evidence or {}),
    }


def version_record(name: str, version: str, factory: str, params: dict[str, Any], *,
                   parent_version: str | None = None, training_window: tuple[int, int] | None = None,
                   pickled: bytes | None = None, note: str | None = None, actor: str | None = None,
                   evidence: dict[str, str] | None = None) -> ModelRecord:
    record = _record(name, "VERSION", version=version, note=note, actor=actor, evidence=evidence)
    record["spec"] = {"factory": factory, "params": encode_params(params), "pickle": pickled}
    record["parent_version"] = parent_version
    if training_window is not None:
        record["training_window"] = {"start_ms": training_window[0], "end_ms": training_window[1]}
    return record


def routing_record(name: str, mode: str, champion: str, challengers: list[str] | None = None,
                   canary_percent: float = 0.0, *, note: str | None = None, actor: str | None = None,
                   evidence: dict[str, str] | None = None) -> ModelRecord:
    if mode not in MODES:
        raise ConfigError(f"routing mode must be one of {MODES}, not {mode!r}")
    record = _record(name, "ROUTING", note=note, actor=actor, evidence=evidence)
    record["routing"] = {"mode": mode, "champion": champion, "challengers": list(challengers or []),
                         "canary_percent": canary_percent}
    return record


# Counters of a METRICS record that are the learner's, over all versions (the same in every version's record);
# the others (learned, served) and every metric are the version's own.
STAGE_COUNTERS = ("labels_learned", "feedback_received", "feedback_joined", "feedback_duplicate", "feedback_late",
                  "feedback_unmatched", "feedback_pending", "feedback_held")


def metrics_record(name: str, version: str, metrics: dict[str, float], counters: dict[str, int]) -> ModelRecord:
    record = _record(name, "METRICS", version=version)
    record["metrics"], record["counters"] = metrics, counters
    return record


def snapshot_record(name: str, version: str, model: bytes, learned: int) -> ModelRecord:
    record = _record(name, "SNAPSHOT", version=version)
    record["snapshot"], record["counters"] = model, {"learned": learned}
    return record
