"""Scoring: every active version scores the event; exactly one prediction is served.

The routing (``weir.registry.routing``) says which versions take part and
which one serves: in basic mode the champion; in shadow mode the champion,
while the challengers score beside it and are never served; in canary mode
the canary serves the entities whose stable hash falls below its percentage,
the champion the rest. Each version's prediction (or its error) becomes one
record, the served one last.

Failures stay with their version: a version that raises, or a challenger that
answers nothing (it has not learned a class yet) or after its time budget, is
recorded as an error for that version and
never changes another's prediction. If the version that should serve fails,
the champion serves instead; if the champion fails too (or it was the one to
serve), the event is dead-lettered with the reason, never dropped. The
champion has no time budget: it is the last resort, and a late answer (a GC
pause, a busy core) is better than a dead letter; its latency is recorded all
the same.

river's ``predict_proba_many`` is not used: on sparse one-hot features it
returns different probabilities (up to 0.197 apart, measured) and is slower
here than ``predict_proba_one``; batching must not change a result.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry

from streams.serve.metrics import ServeMetrics
from weir.clock import now_ms
from weir.contract.deadletter import Rejection
from weir.contract.records import FeatureVector, Label, Prediction
from weir.registry.factories import Classifier, Model, as_classifier, positive_score
from weir.registry.view import ModelRegistry, ModelVersion

STAGE = "serve"


class Scorer:
    """Scores feature vectors with the registry's active versions and picks the served one."""

    def __init__(self, registry: ModelRegistry, *, timeout_ms: float = 50.0, metrics: ServeMetrics | None = None,
                 positive: Label | None = None) -> None:
        """``positive``: the class a score is the probability of (WEIR_POSITIVE_LABEL)."""
        self.registry = registry
        self.positive = positive
        self._classifiers: dict[str, tuple[Model, Classifier | None]] = {}  # per version: its model, as classifier
        self.timeout_ms = timeout_ms
        self.metrics = metrics or ServeMetrics(CollectorRegistry())

    def score(self, vector: FeatureVector, *, serve: str | None = None) -> list[Prediction] | Rejection:
        """All records for one event (the served one last), or why the event cannot be served. ``serve``: the
        version a caller asked for by name (the HTTP service's per-version path) instead of the routed one."""
        routing, active = self.registry.routing, self.registry.active()
        if routing is None or not active:
            return Rejection("no-champion", STAGE, f"model {self.registry.model_name!r} has no champion routed")
        target = serve or routing.router.serving(vector["entity_id"])
        records = {
            v.version: self._predict(v, vector, routing.router.role_of(v.version),
                                     None if v.version == routing.champion else self.timeout_ms)
            for v in active
        }
        served = next((v for v in (target, routing.champion) if v in records and records[v]["error"] is None), None)
        self.metrics.observe_event(self.registry.model_name, records.values(), served)
        if served is None:
            failed = ", ".join(f"{v}: {r['error']}" for v, r in records.items() if r["error"])
            return Rejection("champion-failed", STAGE, f"no version could serve ({failed})")
        records[served]["served"] = True
        return [r for v, r in records.items() if v != served] + [records[served]]

    def _predict(self, version: ModelVersion, vector: FeatureVector, role: str, budget_ms: float | None
                 ) -> Prediction:
        record: Prediction = {
            "event_id": vector["event_id"], "entity_id": vector["entity_id"], "event_time": vector["event_time"],
            "model_name": version.name, "model_version": version.version, "role": role, "served": False,
            "score": None, "predicted_label": None, "latency_ms": 0.0, "predicted_at": 0, "error": None,
            "confidence": None,
        }
        proba: dict[Any, float] = {}
        value: float | None = None  # a regressor's answer
        started = time.perf_counter()
        try:
            model = version.model  # built on first use, which is not this version's scoring time
            classifier = self._classifier(version.version, model)
            started = time.perf_counter()
            if classifier is not None:
                proba = classifier.predict_proba_one(vector["features"])
            else:
                value = float(model.predict_one(vector["features"]))
        except Exception as exc:  # a version's failure must never touch another version's answer
            record["error"] = f"{type(exc).__name__}: {exc}"[:500]
        record["latency_ms"] = latency = (time.perf_counter() - started) * 1000.0
        record["predicted_at"] = now_ms()
        if record["error"] is None and budget_ms is not None and latency > budget_ms:
            record["error"] = f"timeout: {latency:.1f} ms > {budget_ms:g} ms"
        elif record["error"] is None and value is not None:
            record["predicted_label"] = record["score"] = value  # a regressor's score is its prediction
        elif record["error"] is None and not proba and budget_ms is not None:  # the champion has no budget
            record["error"] = "no answer: the model predicts no class yet"  # a fresh tree has seen no label
        elif record["error"] is None and proba:
            record["predicted_label"] = max(proba, key=proba.__getitem__)
            record["score"] = positive_score(proba, self.positive)
            record["confidence"] = float(proba[record["predicted_label"]])
        return record

    def _classifier(self, version: str, model: Model) -> Classifier | None:
        """The version's model as a classifier (None: a regressor), looked into once per model object: a serving
        copy or a restore replaces the model."""
        known = self._classifiers.get(version)
        if known is None or known[0] is not model:
            known = self._classifiers[version] = (model, as_classifier(model))
        return known[1]
