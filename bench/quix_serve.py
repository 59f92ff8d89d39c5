"""The serve stage written as a Quix Streams application, for ``bench.e2e`` to measure beside Weir's.

It runs in the benchmark's own virtual environment (``bench.e2e.quix_python``)
and scores with the same code as Weir's serve stage: the registry read from
the ``models`` topic and ``Scorer``; Quix does the consuming, the exactly-once
transactions and the producing.
"""

from __future__ import annotations

from typing import Any

from quixstreams import Application
from quixstreams.models.serializers import Deserializer, Serializer

from streams.serve.scorer import Scorer
from weir.contract.deadletter import Rejection
from weir.contract.records import FeatureVector, Prediction
from weir.contract.serde import AvroSerde, open_catalog, topic_serde
from weir.contract.topics import FEATURES, PREDICTIONS
from weir.registry.store import load_registry
from weir.registry.view import ModelRegistry
from weir.settings import Settings


class AvroIn(Deserializer):
    def __init__(self, serde: AvroSerde[FeatureVector]) -> None:
        super().__init__()
        self.serde = serde

    def __call__(self, value: bytes, ctx: Any) -> FeatureVector:
        return self.serde.decode(value)


class AvroOut(Serializer):
    def __init__(self, serde: AvroSerde[Prediction]) -> None:
        self.serde = serde

    def __call__(self, value: Prediction, ctx: Any) -> bytes:
        return self.serde.encode(value)


def main() -> None:
    settings = Settings()
    catalog = open_catalog(settings)
    registry = ModelRegistry(settings.model_name)
    load_registry(settings, catalog, registry)
    scorer = Scorer(registry, timeout_ms=settings.predict_timeout_ms)
    features, predictions = topic_serde(catalog, settings, FEATURES), topic_serde(catalog, settings, PREDICTIONS)

    def score(vector: FeatureVector) -> list[Prediction]:
        result = scorer.score(vector)
        return [] if isinstance(result, Rejection) else result

    app = Application(broker_address=settings.bootstrap, consumer_group=f"{settings.app_id}-quix",
                      auto_offset_reset="earliest", processing_guarantee="exactly-once", commit_interval=0.5,
                      loglevel="WARNING")
    source = app.topic(features.topic, value_deserializer=AvroIn(features), key_deserializer="bytes")
    sink = app.topic(predictions.topic, value_serializer=AvroOut(predictions), key_serializer="bytes")
    app.dataframe(source).apply(score, expand=True).to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
