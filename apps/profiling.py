"""`weir monitor profile`: a data-drift reference built from a dataset or a range of the features topic."""

from __future__ import annotations

from pathlib import Path

from apps.replay import END_OF_TIME, index_time
from producers.sources import SourceSpec
from weir.contract.features import attributes_of, compute_features
from weir.contract.serde import SchemaCatalog
from weir.kafka.ranges import read_topic_range
from weir.settings import Settings
from weir.stats.profile import FeatureProfiles, build_profile, fingerprint, save_profile

Rows = list[dict[str, float | str | None]]


def dataset_rows(source: SourceSpec) -> Rows:
    """Each event's features, in the event's terms (categories as strings)."""
    return [dict(attributes_of(compute_features(e.attributes))) for e in source.open(event_time=index_time).events]


def topic_rows(settings: Settings, catalog: SchemaCatalog, since: int | None, until: int | None, *,
               progress: bool) -> tuple[Rows, str]:
    """The features the models saw between ``since`` and ``until``, and how to name that range."""
    span = read_topic_range(settings, catalog, since_ms=since or 0, until_ms=until or END_OF_TIME,
                            progress=progress, with_labels=False)
    described = f"{settings.topic('features')} from {since or 'the start'} until {until or 'the end'}"
    return [dict(attributes_of(v["features"])) for v in span.vectors], described


def write_profile(rows: Rows, out: Path, described: str) -> tuple[FeatureProfiles, str]:
    """Write the profile of ``rows`` to ``out``; its features and the fingerprint a monitor records for it."""
    features = build_profile(rows)
    save_profile(out, features, origin=f"built from {described}", source=described)
    return features, fingerprint(out)
