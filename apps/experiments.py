"""Experiments: model specs replayed over one data version, tracked in MLflow, ranked, the best registered.

A spec file names the data (a snapshot folder, or a topic range of the
features and feedback topics) and the candidates: factories, hyperparameters
(a list is a grid axis) and feature subsets. Each candidate goes through
``replay_vectors``, the deterministic progressive validation of `weir
replay`, with the labels at their recorded times; candidates run in parallel
processes, and the parent alone writes to MLflow, one run per candidate: its
parameters, its metrics over time (the step is the count of labels learned),
the data manifest, the trained model, a plot, and tags for the data version
and the code and library versions.

    name: churn-november
    data: {snapshot: data/nov26}     # or {since: 2026-11-26T09:00, until: 2026-11-26T10:00}
    rank_by: accuracy                 # accuracy, log_loss, roc_auc, mae or rmse
    every: 500                        # labels between metric steps
    candidates:
      - factory: logistic_regression
        params: {lr: [0.01, 0.05]}
      - factory: hoeffding_tree
        params: {grace_period: [50, 200]}
        features: [monthly_charges, support_calls_30d, plan]   # plan: every plan=... column
"""

from __future__ import annotations

import logging
import platform
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version as installed
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from tqdm import tqdm

import weir
from apps.replay import END_OF_TIME, replay_vectors
from apps.snapshots import read_snapshot
from weir.contract.records import FeatureVector, Label
from weir.contract.serde import SchemaCatalog
from weir.errors import ConfigError, invalid
from weir.kafka.ranges import Labels, read_topic_range
from weir.registry.candidates import Candidate, CandidateSpec, expand
from weir.registry.decisions import current, register, route, sign_model_file
from weir.settings import Settings
from weir.state import pickling

log = logging.getLogger("weir.experiments")

LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
Metric = Literal["accuracy", "log_loss", "roc_auc", "mae", "rmse"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    snapshot: Path | None = None
    since: datetime | int | None = None
    until: datetime | int | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if self.snapshot is not None and (self.since is not None or self.until is not None):
            raise ValueError("data: a snapshot or a topic range (since/until), not both")
        return self


class ExperimentSpec(_Strict):
    name: str = Field(min_length=1)
    data: DataSpec
    rank_by: Metric = "accuracy"
    every: int = Field(default=500, ge=10)
    candidates: tuple[CandidateSpec, ...] = Field(min_length=1)


def parse_spec(text: str, origin: str) -> tuple[ExperimentSpec, list[Candidate]]:
    """The spec and its candidates, the grid expanded; every problem named, and every candidate built once so a
    bad hyperparameter fails here, not in a worker."""
    try:
        document = yaml.safe_load(text)
        spec = ExperimentSpec.model_validate(document)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not YAML: {exc}") from exc
    except ValidationError as exc:
        raise invalid(origin, exc) from exc
    try:
        candidates = expand(spec.candidates)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from exc
    return spec, candidates


@dataclass(frozen=True)
class DataVersion:
    """The data an experiment ran on: its content hash and what a person needs to read it again."""

    data_version: str
    manifest: dict[str, Any]


def load_data(settings: Settings, catalog: SchemaCatalog, data: DataSpec, base: Path,
              progress: bool) -> tuple[list[FeatureVector], Labels, DataVersion]:
    """The spec's data: a snapshot (a relative path is the spec file's folder's), or a topic range."""
    if data.snapshot is not None:
        folder = data.snapshot if data.snapshot.is_absolute() else base / data.snapshot
        span, manifest = read_snapshot(folder, settings, catalog)
        return span.vectors, span.labels, DataVersion(manifest.data_version, {"snapshot": str(folder),
                                                                              **asdict(manifest)})
    since, until = _epoch_ms(data.since) or 0, _epoch_ms(data.until) or END_OF_TIME
    span = read_topic_range(settings, catalog, since_ms=since, until_ms=until, progress=progress)
    version = span.content_hash()
    return span.vectors, span.labels, DataVersion(version, {
        "data_version": version, "topic_prefix": settings.topic_prefix, "since_ms": since, "until_ms": until,
        "topics": {t: {str(p): list(r) for p, r in s.items()} for t, s in span.spans.items()},
        "events": len(span.vectors), "labels": len(span.labels), "counts": span.counts})


def _epoch_ms(value: datetime | int | None) -> int | None:
    """A spec's time: epoch ms, or a datetime (UTC when it names no zone)."""
    if value is None or isinstance(value, int):
        return value
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Outcome:
    """What one candidate's replay gave."""

    candidate: Candidate
    metrics: dict[str, float]
    history: list[tuple[int, dict[str, float]]]
    labels: int
    model: bytes  # the trained model, pickled (river objects and plain data only)


def evaluate(job: tuple[Candidate, list[FeatureVector], Labels, Label | None, int]) -> Outcome:
    """One candidate's progressive validation (in a worker process)."""
    candidate, vectors, labels, positive, every = job
    kept: list[FeatureVector] = [{**v, "features": candidate.keep(v["features"])} for v in vectors]
    result = replay_vectors(kept, labels, factory=candidate.factory, params=candidate.params, positive=positive,
                            every=every)
    model = result.registry.versions["v1"].model
    return Outcome(candidate, result.metrics, result.history, result.labels, pickling.dumps(model))


def run_all(candidates: list[Candidate], vectors: list[FeatureVector], labels: Labels, *, positive: Label | None,
            every: int, jobs: int, progress: bool, on_done: Callable[[Outcome], None]) -> None:
    """Every candidate in ``jobs`` processes; ``on_done`` hears each outcome in this process as it comes."""
    work = [(c, vectors, labels, positive, every) for c in candidates]
    with tqdm(total=len(work), desc="candidates", unit="run", disable=not progress, dynamic_ncols=True) as bar:
        if jobs <= 1:
            for job in work:
                on_done(evaluate(job))
                bar.update()
            return
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for future in as_completed([pool.submit(evaluate, job) for job in work]):
                on_done(future.result())
                bar.update()


def ranked(outcomes: list[Outcome], rank_by: str) -> list[Outcome]:
    """Best first; a run without the metric last."""
    sign = 1.0 if rank_by in LOWER_IS_BETTER else -1.0
    return sorted(outcomes, key=lambda o: (rank_by not in o.metrics, sign * o.metrics.get(rank_by, 0.0),
                                           o.candidate.name))


def code_tags() -> dict[str, str]:
    """The code and library versions a run was made with."""
    return {"weir.version": weir.__version__, "river.version": installed("river"),
            "python.version": platform.python_version()}


def default_tracking_uri(runs_dir: Path) -> str:
    """The embedded store: SQLite under the project's runs folder, no server."""
    folder = (runs_dir / "mlflow").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def register_winner(settings: Settings, catalog: SchemaCatalog, model_name: str, model: bytes, *, run: str,
                    experiment: str, candidate: str, data_version: str, tracking_uri: str,
                    score: str) -> tuple[str, str]:
    """The winning run's model as a new version of ``model_name`` in Weir's registry, shadowing the champion
    (or serving as the first champion), with its lineage to the MLflow run; (version, routing mode)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pkl"
        path.write_bytes(model)
        sign_model_file(settings, path)  # made here, from the run's artifact: signed by the deployment's key
        champion = current(settings, catalog, model_name).routing
        record = register(settings, catalog, model_name, pickle_path=path,
                          parent=champion.champion if champion else None,
                          note=f"experiment {experiment}: {candidate}",
                          evidence={"mlflow_run_id": run, "mlflow_experiment": experiment,
                                    "mlflow_tracking_uri": tracking_uri, "data_version": data_version,
                                    "candidate": candidate, "score": score, **code_tags()})
    version = record["version"]
    assert version is not None, "a VERSION record names its version"
    if champion is None:
        route(settings, catalog, model_name, "basic", champion=version, note=f"experiment {experiment}: first model")
        return version, "basic"
    route(settings, catalog, model_name, "shadow", champion=champion.champion,
          challengers=[*champion.challengers, version], note=f"experiment {experiment}: the best run shadows")
    return version, "shadow"
