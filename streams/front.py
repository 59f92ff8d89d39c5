"""The front of the loop, fused: validate, features and serve as one stage, records handed on in memory.

The three stages share the entity key, so one consumer of ``events.raw`` can
run them in one loop: each raw event is decoded once, and the valid event and
its feature vector pass from stage to stage as typed records. The front still
writes ``events.valid``, ``features``, ``predictions`` and ``events.dlq``, so
the topic contract and every reader of it stay as they are, and the outputs
commit together with the raw offsets they came from. ``WEIR_FUSED=false`` runs
the three stages apart instead, for scaling them separately.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.features import FeaturesStage, feature_vector
from streams.serve.stage import ServeStage
from streams.validate.stage import ValidateStage
from weir.contract.messages import InRecord, OutRecord
from weir.contract.serde import SchemaCatalog
from weir.registry.view import ModelRegistry
from weir.settings import Settings
from weir.state.served import ServedIds


class FrontStage:
    """events.raw -> events.valid, features and predictions (one served), or events.dlq."""

    name = "front"

    def __init__(self, settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry,
                 metrics: CollectorRegistry | None = None) -> None:
        self.validate = ValidateStage(settings, catalog, metrics, state_name=self.name)
        self.features = FeaturesStage(settings, catalog)
        self.serve = ServeStage(settings, catalog, registry, metrics)
        self.inputs = self.validate.inputs
        self.outputs = tuple(dict.fromkeys(self.validate.outputs + self.features.outputs + self.serve.outputs))

    @property
    def partitioned_state(self) -> ServedIds:
        """The event ids served, kept by validation (a duplicate is refused there, before any work)."""
        return self.validate.served

    def process(self, batch: list[InRecord]) -> list[OutRecord]:
        out: list[OutRecord] = []
        for record in batch:
            event, checked = self.validate.check(record)
            out += checked
            if event is not None:
                vector = feature_vector(event)
                out.append(self.features.record(vector))
                out += self.serve.score(record, vector)
        self.serve.scorer.metrics.flush()
        return out

    def tick(self) -> list[OutRecord]:
        return self.serve.tick()
