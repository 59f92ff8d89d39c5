"""Validation of one raw event: decode it with its writer's schema, check the rules, or say why not.

Nothing raised here can escape: every failure becomes a ``Rejection`` with a
reason, a rule and a quality dimension. Every record is also measured
(missing and out-of-range fields, lateness) into ``QualityCounters``, under
its source when the rules file declares it and under ``UNDECLARED`` when not:
the ``source`` field is the sender's to choose, and a label per value would
grow without bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from streams.validate.quality import QualityCounters
from streams.validate.rules import RuleSet, SourceRules, Violation
from weir.clock import now_ms
from weir.contract.deadletter import DUPLICATE_EVENT, VALIDATE_STAGE, Rejection
from weir.contract.records import AttributeValue, RawEvent, ValidEvent
from weir.contract.serde import AvroSerde
from weir.errors import SerdeError

STAGE = VALIDATE_STAGE
UNDECLARED = "(undeclared)"  # the metrics' source label of every source the rules file does not declare


class EventValidator:
    """Turns raw event bytes into a valid event record or a ``Rejection``, counting quality as it goes."""

    def __init__(self, raw: AvroSerde[RawEvent], rules: RuleSet, counters: QualityCounters | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self.raw = raw
        self.rules = rules
        self.counters = counters or QualityCounters()
        self.clock = clock

    def validate(self, value: bytes | None, *, resent: bool = False) -> ValidEvent | Rejection:
        """``resent``: a dead letter sent again after a fix. It is old and out of order by nature, so the
        rules that resending itself breaks (event-time lag, entity history) are not applied to it."""
        return self._counted(self._verdict(value, resent))

    def validate_encoded(self, event: RawEvent, value: bytes) -> ValidEvent | Rejection:
        """The verdict on ``value``, which this process encoded from ``event`` (the HTTP service): the same
        rules, without decoding back what it just encoded."""
        return self._counted(self._oversized(value) or self.check(event))

    def duplicate(self, event: ValidEvent) -> Rejection:
        """The refusal of a valid event whose id was served already (the validate stage remembers served ids),
        counted as a dead letter and a duplicate."""
        self.counters.duplicates[self._label(event["source"])] += 1
        rejection = _reject(Violation(DUPLICATE_EVENT, "unique-event-id", "consistency",
                                      f"event {event['event_id']} was served already (an id is served once per "
                                      "WEIR_DEDUPE_HORIZON_MS of event time)"), source=event["source"])
        self._counted(rejection)
        return rejection

    def _counted(self, verdict: ValidEvent | Rejection) -> ValidEvent | Rejection:
        if isinstance(verdict, Rejection):
            source = "?" if verdict.source is None else self._label(verdict.source)
            self.counters.dead_letters[(source, verdict.dimension or "accuracy", verdict.reason)] += 1
        return verdict

    def _label(self, source: str) -> str:
        return source if source in self.rules.sources else UNDECLARED

    def _oversized(self, value: bytes | None) -> Rejection | None:
        if value is not None and len(value) > self.rules.max_record_bytes:
            return _reject(Violation("oversized-record", "max-record-bytes", "accuracy",
                                     f"{len(value)} bytes > {self.rules.max_record_bytes}"))
        return None

    def _verdict(self, value: bytes | None, resent: bool) -> ValidEvent | Rejection:
        oversized = self._oversized(value)
        if oversized is not None:
            return oversized
        try:
            event = self.raw.decode(value)
        except SerdeError as exc:
            return _reject(Violation(exc.reason, "decode", "accuracy", str(exc)), exception=exc)
        return self.check(event, resent=resent)

    def check(self, event: RawEvent, *, resent: bool = False) -> ValidEvent | Rejection:
        """The rules on a decoded event (what ``validate`` does after decoding), counting its quality."""
        source: str = event["source"]
        label = self._label(source)
        self.counters.records[label] += 1
        rules = self.rules.for_source(source)
        if rules is None:
            return _reject(_ids(event) or Violation("unknown-source", "declared-source", "consistency",
                                                    self.rules.unknown_source(source), "source"), source=source)
        self._measure(label, rules, event)
        violation = (
            _ids(event)
            or _finite(event["attributes"])
            or next(filter(None, (r.check(event["attributes"].get(n)) for n, r in rules.fields.items())), None)
            or next(filter(None, (r.check(event["attributes"]) for r in rules.cross_field)), None)
            or self._timeliness(label, event["event_time"], resent)
            or (None if resent else rules.entity.check(event["entity_id"], event["attributes"]))
        )
        if violation is not None:
            return _reject(violation, source=source)
        if not resent:
            rules.entity.remember(event["entity_id"], event["attributes"])
        return {"event_id": event["event_id"], "entity_id": event["entity_id"], "event_time": event["event_time"],
                "source": source, "attributes": event["attributes"], "validated_at": self.clock()}

    def _measure(self, label: str, rules: SourceRules, event: RawEvent) -> None:
        c, attributes = self.counters, event["attributes"]
        for name, rule in rules.fields.items():
            value = attributes.get(name)
            c.field_seen[(label, name)] += 1
            if value is None:
                c.field_missing[(label, name)] += 1
            elif rule.out_of_range(value):
                c.field_out_of_range[(label, name)] += 1

    def _timeliness(self, label: str, event_time: int, resent: bool) -> Violation | None:
        now = self.clock()
        skew = event_time - now
        if skew > self.rules.max_future_skew_ms:
            return Violation("future-event-time", "max-future-skew", "timeliness",
                             f"event_time is {skew / 1000:.0f} s in the future")
        lag = now - event_time
        if self.rules.max_lag_ms is not None and lag > self.rules.max_lag_ms and not resent:
            self.counters.late[label] += 1
            return Violation("late-event", "max-lag", "timeliness", f"event_time is {lag / 1000:.0f} s old")
        return None


def _ids(event: RawEvent) -> Violation | None:
    for key, value in (("event_id", event["event_id"]), ("entity_id", event["entity_id"])):
        if not value:
            return Violation("missing-field", f"required:{key}", "completeness", f"{key} is empty", key)
    return None


def _finite(attributes: dict[str, AttributeValue]) -> Violation | None:
    for name, value in attributes.items():
        if isinstance(value, float) and not math.isfinite(value):
            return Violation("non-finite-value", f"finite:{name}", "accuracy", f"{name} is {value}", name)
    return None


def _reject(v: Violation, *, source: str | None = None, exception: BaseException | None = None) -> Rejection:
    return Rejection(v.reason, STAGE, v.message, exception=exception, rule=v.rule, dimension=v.dimension,
                     source=source)
