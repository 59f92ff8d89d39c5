"""What the HTTP service does with a request's events and labels, apart from HTTP.

An event goes the way the front takes it: the same validation rules
(``streams.validate``), the same features (``streams.features``), every active
version scoring it and the same router picking the served one
(``streams.serve.scorer``), so an entity gets the same arm here as on the
stream. What comes out is the answer and the records to write: the raw event on
``events.raw`` (signed as served, so the front passes it by), its features and
its predictions, or dead letters and the status that refuses the request.

A request is all or nothing: one bad event refuses the whole request (422),
and only the bad events are dead-lettered; the caller fixes them and sends the
request again. An event id is served once: an id answered lately, sent again
with the same event (a client retrying after its own timeout), gets the same
answer from memory and writes nothing; sent with another entity, source or
attributes, it is refused with 409 naming what differs; one still being
written is refused with 409 until it is answered.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from apps.service.payloads import Answer
from streams.features import FeaturesStage, feature_vector
from streams.runtime.stage import dead_letter
from streams.serve.metrics import ServeMetrics
from streams.serve.scorer import Scorer
from streams.validate import quality
from streams.validate.rules import RuleSet, SourceRules
from streams.validate.validator import EventValidator
from weir.clock import now_ms
from weir.contract.deadletter import RECEIVED_BY_HTTP, Rejection
from weir.contract.feedback import feedback_rejection, parse_positive
from weir.contract.messages import Headers, InRecord, OutRecord
from weir.contract.records import Feedback, Prediction, RawEvent
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.served import served_headers
from weir.contract.topics import EVENTS_DLQ, EVENTS_RAW, FEEDBACK, PREDICTIONS
from weir.errors import ConfigError, SerdeError
from weir.registry.signing import model_signer
from weir.registry.view import ModelRegistry
from weir.settings import Settings

SERVED_BY = RECEIVED_BY_HTTP  # who served an event, in the signed claim, and who received what it refused
STAGE = "http"
RECENT_ANSWERS = 100_000  # event ids answered lately, for retries and reused ids


def source_rules(settings: Settings) -> SourceRules:
    """The rules of the source a request's event gets when it names none. Without any, every such event would
    be refused: the service refuses to start instead."""
    rules = RuleSet.load(settings.rules_path)
    found = rules.for_source(settings.http_source)
    if found is None:
        raise ConfigError(f"the HTTP service's source {settings.http_source!r} (--source, WEIR_HTTP_SOURCE) has no "
                          f"validation rules in {settings.rules_path}, which declares "
                          f"{', '.join(sorted(rules.sources)) or 'none'} and no default_source: give --source one "
                          "it declares, or declare the source (or a default_source) there")
    return found


@dataclass(frozen=True)
class Refusal:
    """Why a request gets no answer: its HTTP status, a message, a problem per refused item, and their dead
    letters (to write before answering)."""

    status: int
    message: str
    problems: list[dict[str, str]] = field(default_factory=list)
    letters: list[OutRecord] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The Open Inference Protocol's error body, with the reasons beside it."""
        body: dict[str, Any] = {"error": self.message}
        if self.problems:
            body["problems"] = self.problems
        return body


@dataclass(frozen=True, slots=True)
class Remembered:
    """An answered event: its answer, and what tells a retry of it from another event under the same id. Its
    time is not compared: the server stamps an event that names none, and a client may stamp each attempt."""

    answer: Answer
    source: str
    attributes: bytes  # a digest: the attributes themselves would cost far more memory

    @classmethod
    def of(cls, answer: Answer, event: RawEvent) -> Remembered:
        return cls(answer, event["source"], _digest(event["attributes"]))

    def conflict(self, event: RawEvent) -> dict[str, str] | None:
        """The problem of ``event`` reusing this event's id for another event; None for a retry of it."""
        if event["entity_id"] != self.answer.entity_id:
            differs, detail = "entity_id", f"for entity_id {self.answer.entity_id!r}, not {event['entity_id']!r}"
        elif event["source"] != self.source:
            differs, detail = "source", f"for source {self.source!r}, not {event['source']!r}"
        elif _digest(event["attributes"]) != self.attributes:
            differs, detail = "attributes", "with other attributes"
        else:
            return None
        return {"event_id": event["event_id"], "reason": "event-id-reused", "field": differs,
                "message": f"event {event['event_id']} was answered {detail}"}


def _digest(attributes: dict[str, Any]) -> bytes:
    return hashlib.blake2b(json.dumps(attributes, sort_keys=True, separators=(",", ":")).encode(),
                           digest_size=16).digest()


@dataclass(frozen=True)
class Served:
    """The answers, one per event, what to remember of each once written, the records that make them part of
    the loop, and the events answered anew (not from memory), in flight until ``Inference.settle``."""

    answers: list[Answer]
    records: list[OutRecord]
    fresh: frozenset[str] = frozenset()
    remembered: list[Remembered] = field(default_factory=list)


class Inference:
    """The front's rules, features and scoring for events that come by HTTP, and the records they leave."""

    def __init__(self, settings: Settings, catalog: SchemaCatalog, registry: ModelRegistry,
                 metrics: CollectorRegistry) -> None:
        self.registry = registry
        self.raw = topic_serde(catalog, settings, EVENTS_RAW)
        self.features = FeaturesStage(settings, catalog)
        self.predictions = topic_serde(catalog, settings, PREDICTIONS)
        self.feedback = topic_serde(catalog, settings, FEEDBACK)
        self.dlq_topic = settings.topic(EVENTS_DLQ.name)
        self.validator = EventValidator(self.raw, RuleSet.load(settings.rules_path))
        quality.register(self.validator.counters, metrics)
        self.scorer = Scorer(registry, timeout_ms=settings.predict_timeout_ms, metrics=ServeMetrics(metrics),
                             positive=parse_positive(settings.positive_label))
        self.signer = model_signer(settings)
        self.settings = settings
        self.recent: OrderedDict[str, Remembered] = OrderedDict()  # answered lately, by event id
        self.in_flight: set[str] = set()  # event ids whose records are being written

    # --- events ------------------------------------------------------------------------------------------------

    def serve(self, events: list[RawEvent], *, path: str, version: str | None = None) -> Served | Refusal:
        """Answer every event, or refuse the request; ``version``: the one the caller asked for by name. An event
        id answered lately gets its answer again, whatever the version asked (it was served already), if the
        event is the same; another event under that id is refused (an event id is served once)."""
        if version is not None:
            refused = self.unservable(version)
            if refused is not None:
                return refused
        ids = [e["event_id"] for e in events]
        if len(set(ids)) < len(ids):
            return Refusal(422, "an event id appears twice in the request; each event is served once")
        busy = [i for i in ids if i in self.in_flight]
        if busy:
            return Refusal(409, f"event {busy[0]} is being answered by an earlier request; send it again once "
                           "that one is answered")
        known = {e["event_id"]: r for e in events if (r := self.recent.get(e["event_id"])) is not None}
        conflicts = [p for e in events if e["event_id"] in known and (p := known[e["event_id"]].conflict(e))]
        if conflicts:
            return Refusal(409, f"{len(conflicts)} of {len(events)} events reuse the id of an event answered "
                           "already, which is served once: give another event another id", conflicts)
        fresh = [e for e in events if e["event_id"] not in known]
        encoded: list[bytes] = []
        problems: list[dict[str, str]] = []
        letters: list[OutRecord] = []
        for event in fresh:
            value, verdict = self._check(event)
            encoded.append(value)
            if isinstance(verdict, Rejection):
                problems.append(_problem(event["event_id"], verdict))
                letters.append(self._letter(self.raw.topic, event["entity_id"], value, verdict, path))
        if problems:
            return Refusal(422, f"{len(problems)} of {len(events)} events refused by the validation rules; "
                           "they are on the dead-letter topic", problems, letters)
        records: list[OutRecord] = []
        for event, value in zip(fresh, encoded, strict=True):
            vector = feature_vector(event)
            scored = self.scorer.score(vector, serve=version)
            if isinstance(scored, Rejection):
                self.scorer.metrics.flush()
                return Refusal(503, scored.message, [_problem(event["event_id"], scored)],
                               [self._letter(self.raw.topic, event["entity_id"], value, scored, path)])
            key = event["entity_id"].encode()
            records.append(OutRecord(self.raw.topic, key, value,
                                     served_headers(SERVED_BY, self.signer.sign_served(value))))
            records.append(self.features.record(vector))
            records += [OutRecord(self.predictions.topic, key, self.predictions.encode(p)) for p in scored]
            known[event["event_id"]] = Remembered.of(_answer(scored[-1]), event)
        self.scorer.metrics.flush()
        fresh_ids = frozenset(e["event_id"] for e in fresh)
        self.in_flight |= fresh_ids
        remembered = [known[i] for i in ids]
        return Served([r.answer for r in remembered], records, fresh_ids, remembered)

    def settle(self, served: Served, *, written: bool) -> None:
        """Once a request's records are written (or not): its events are no longer in flight, and a retry of a
        written one gets the same answer and writes nothing."""
        self.in_flight -= served.fresh
        if not written:
            return
        for remembered in served.remembered:
            self.recent[remembered.answer.event_id] = remembered
            self.recent.move_to_end(remembered.answer.event_id)
        while len(self.recent) > RECENT_ANSWERS:
            self.recent.popitem(last=False)

    def _check(self, event: RawEvent) -> tuple[bytes, RawEvent | Rejection]:
        """The event as ``events.raw`` holds it, and the rules' verdict on it (what the front would say)."""
        try:
            value = self.raw.encode(event)
        except SerdeError as exc:
            return _json(event), Rejection(exc.reason, STAGE, str(exc), exc, "encode", "accuracy",
                                                   event["source"])
        verdict = self.validator.validate_encoded(event, value)
        return value, (verdict if isinstance(verdict, Rejection) else event)

    def unservable(self, version: str) -> Refusal | None:
        """Why ``version`` may not serve on request: unknown, not active, or a shadow (never served)."""
        routing = self.registry.routing
        if routing is None or version not in self.registry.versions:
            return Refusal(404, f"model {self.registry.model_name!r} has no version {version!r}")
        if version not in routing.router.scoring():
            return Refusal(409, f"{version} is not active ({routing.describe()}); only the champion and a canary "
                           "serve")
        role = routing.router.role_of(version)
        if role not in ("champion", "canary"):
            return Refusal(409, f"{version} is a {role}: its predictions are never served ({routing.describe()})")
        return None

    # --- labels ------------------------------------------------------------------------------------------------

    def label(self, labels: list[Feedback], *, path: str) -> list[OutRecord] | Refusal:
        """The feedback records of the labels, or the refusal of the request and the bad labels' dead letters."""
        records, problems, letters = [], [], []
        for item in labels:
            try:
                value = self.feedback.encode(item)
            except SerdeError as exc:
                rejection = Rejection(exc.reason, STAGE, str(exc), exc, "encode", "accuracy")
                problems.append(_problem(item["event_id"], rejection))
                letters.append(self._letter(self.feedback.topic, item["entity_id"], _json(item), rejection, path))
                continue
            rejection_or_none = feedback_rejection(item, now_ms=now_ms(),
                                                   max_future_ms=self.settings.label_future_skew_ms, stage=STAGE,
                                                   kind=self.settings.label_kind)
            if rejection_or_none is not None:
                problems.append(_problem(item["event_id"], rejection_or_none))
                letters.append(self._letter(self.feedback.topic, item["entity_id"], value, rejection_or_none, path))
            else:
                records.append(OutRecord(self.feedback.topic, item["entity_id"].encode(), value))
        if problems:
            return Refusal(422, f"{len(problems)} of {len(labels)} labels refused; they are on the dead-letter "
                           "topic", problems, letters)
        return records

    # --- bodies that are not requests --------------------------------------------------------------------------

    def refuse_body(self, status: int, message: str, body: bytes, *, topic: str, path: str,
                    reason: str = "bad-request") -> Refusal:
        """A body that could not be read as a request: its bytes go to the dead-letter topic as they came."""
        rejection = Rejection(reason, STAGE, message, rule="http-payload", dimension="accuracy")
        return Refusal(status, message, [], [self._letter(self.settings.topic(topic), None, body, rejection, path)])

    def _letter(self, topic: str, entity_id: str | None, value: bytes, rejection: Rejection,
                path: str) -> OutRecord:
        """The dead letter of something a request carried: received at ``path``, bound for ``topic`` (no
        partition, no offset: it never was on a topic)."""
        headers: Headers = [("weir.received.by", SERVED_BY.encode()), ("weir.received.path", path.encode())]
        came = InRecord(topic, -1, -1, now_ms(), None if entity_id is None else entity_id.encode(), value, headers)
        return dead_letter(self.dlq_topic, came, rejection)


def _json(item: Any) -> bytes:
    """What a request carried, as JSON, for a dead letter when it fits no schema."""
    return json.dumps(item, default=str).encode()


def _answer(served: Prediction) -> Answer:
    return Answer(served["event_id"], served["entity_id"], served["model_name"], served["model_version"],
                  served["role"], served["predicted_label"], served["score"])


def _problem(item_id: str, rejection: Rejection) -> dict[str, str]:
    problem = {"event_id": item_id, "reason": rejection.reason, "message": rejection.message}
    problem.update({k: v for k, v in (("rule", rejection.rule), ("dimension", rejection.dimension)) if v})
    return problem
