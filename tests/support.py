"""Typed helpers several test modules share: whole topic records with neutral defaults, seeded event streams, and
the shapes river's own evaluation reads."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from producers.event import LabelledEvent
from producers.schedule import DriftSchedule
from producers.sources import open_source
from streams.retrainer import run_job
from weir.contract.deadletter import Rejection
from weir.contract.features import compute_features
from weir.contract.messages import InRecord
from weir.contract.records import Label, Prediction
from weir.registry.factories import Classifier, Model, as_classifier
from weir.registry.retraining import RetrainJob, RetrainOutcome

# Rules that declare the made-up sources of stage tests, with the global checks only (its header says why).
MADE_UP_SOURCES_RULES = Path(__file__).parent / "fixtures" / "made-up-sources.rules.yaml"

# river's ``base.typing.Dataset``: (features keyed by any hashable name, target) pairs.
RiverDataset = list[tuple[dict[Hashable, Any], Any]]


def prediction(event_id: str, *, version: str = "v1", served: bool = True, event_time: int = 1_000,
               entity_id: str = "c", model_name: str = "m", role: str = "champion", score: float | None = None,
               predicted_label: Label | None = True, latency_ms: float = 0.0, predicted_at: int = 0,
               error: str | None = None, confidence: float | None = None) -> Prediction:
    """A ``predictions`` record; the fields a test does not name have values no stage reads into."""
    return {"event_id": event_id, "entity_id": entity_id, "event_time": event_time, "model_name": model_name,
            "model_version": version, "role": role, "served": served, "score": score,
            "predicted_label": predicted_label, "latency_ms": latency_ms, "predicted_at": predicted_at,
            "error": error, "confidence": confidence}


def in_record(topic: str, value: bytes | None, *, offset: int = 0, key: bytes | None = b"c",
              partition: int = 0, timestamp_ms: int = 1_000) -> InRecord:
    """A record as a stage would have read it from ``topic``."""
    return InRecord(topic, partition, offset, timestamp_ms, key, value, [])


def predictions_of(result: list[Prediction] | Rejection) -> list[Prediction]:
    """The predictions a scorer made for an event; a failure if it dead-lettered the event instead."""
    assert isinstance(result, list), f"the event was dead-lettered: {result}"
    return result


def rejection_of(result: list[Prediction] | Rejection) -> Rejection:
    """Why a scorer dead-lettered an event; a failure if it served it."""
    assert isinstance(result, Rejection), f"the event was served: {result}"
    return result


def label_of(event: LabelledEvent) -> Label:
    """The label of an event whose source labels every event."""
    assert event.label is not None, f"{event.event_id} has no label"
    return event.label


def events(name: str, n: int = 2_000) -> list[LabelledEvent]:
    """``n`` events of a named source (seed 11, concept drift half-way) stamped 0, 1, 2..."""
    return list(open_source(name, n, seed=11, schedule=DriftSchedule.parse("concept@0.5", n),
                            event_time=lambda i: i).events)


def river_dataset(stream: Iterable[LabelledEvent]) -> RiverDataset:
    """The events as river's ``evaluate.progressive_val_score`` reads them: (feature map, label)."""
    return [({name: value for name, value in compute_features(e.attributes).items()}, e.label) for e in stream]


class FakeClassifier:
    """A test double of a river classifier: it answers ``predict_one`` from ``predict_proba_one``, as river's do."""

    def predict_proba_one(self, x: dict[str, float]) -> dict[Any, float]:
        raise NotImplementedError

    def predict_one(self, x: dict[str, float]) -> Any:
        proba = self.predict_proba_one(x)
        return max(proba, key=proba.__getitem__) if proba else None


def classifier(model: Model) -> Classifier:
    """``model``, which the test knows to be a classifier, typed as one."""
    found = as_classifier(model)
    assert found is not None, f"{model} is not a classifier"
    return found


def rec(topic: str, value: bytes | None, offset: int = 0, key: bytes = b"c1") -> InRecord:
    """A record as a stage reads it, from partition 0."""
    return InRecord(topic, 0, offset, 1_000, key, value, [])


CHROMIUM = "/usr/bin/chromium"  # Debian's, which scripts/install-tools installs for the test tier
# The flags a root user in a closed network needs: no sandbox, and no calls home that the network refuses.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"]


@dataclass(frozen=True)
class RenderedPage:
    """What a real headless Chromium made of a page: its console errors, its images' decoded widths, and its
    figure tables (name -> rows of cell texts keyed by column)."""

    errors: list[str]
    image_widths: list[int]
    tables: dict[str, list[dict[str, str]]]


def render(page_file: Path) -> RenderedPage:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            widths: list[int] = page.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
            raw: list[dict[str, Any]] = page.eval_on_selector_all("table.figure-data", """tables => tables.map(t => ({
                name: t.dataset.figure,
                head: [...t.tHead.rows[0].cells].map(c => c.textContent),
                rows: [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.textContent))}))""")
        finally:
            browser.close()
    tables = {t["name"]: [dict(zip(t["head"], row, strict=True)) for row in t["rows"]] for t in raw}
    return RenderedPage(errors, widths, tables)


def http_status(port: int, path: str) -> int:
    """The status a local endpoint (a worker's /readyz, say) answers; 0 while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class HeldRetraining:
    """``Retraining`` for tests of the back's part: jobs wait until the test runs them (``run``), in its own
    thread, so a test sees the part before and after a job is done. The worker's is ``streams.retrainer``."""

    def __init__(self, *, at_once: bool = False) -> None:
        self.at_once = at_once  # run each job as it is submitted
        self.jobs: list[RetrainJob] = []
        self.outcomes: list[RetrainOutcome] = []

    def submit(self, job: RetrainJob) -> None:
        self.jobs.append(job)
        if self.at_once:
            self.run()

    def run(self) -> None:
        self.outcomes += [run_job(job) for job in self.jobs]
        self.jobs = []

    def finished(self) -> list[RetrainOutcome]:
        done, self.outcomes = self.outcomes, []
        return done
