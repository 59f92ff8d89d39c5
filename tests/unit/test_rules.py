"""Validation rules, property-based: what the rules file allows passes, each kind of breakage is named."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.churn import ChurnDomain
from producers.schedule import DriftSchedule
from producers.sources import NAMED, open_source
from streams.validate.rules import CrossFieldRule, EntityHistory, FieldRule, RuleSet
from streams.validate.validator import UNDECLARED, EventValidator
from weir.clock import now_ms
from weir.contract.deadletter import Rejection
from weir.contract.records import AttributeValue, RawEvent
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.topics import EVENTS_RAW
from weir.errors import ConfigError
from weir.settings import Settings

RULES = RuleSet.load(Settings().rules_path)
CHURN = RULES.sources["churn"]
NUMERIC = {n: r for n, r in CHURN.fields.items() if r.type in ("number", "integer")}
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


@given(st.sampled_from(sorted(NUMERIC)), st.data())
def test_a_value_inside_the_declared_range_passes_and_outside_is_out_of_range(name: str,
                                                                            data: st.DataObject) -> None:
    rule = NUMERIC[name]
    low, high = rule.min, rule.max
    assert low is not None and high is not None, f"{name} declares no range"

    def kind(lo: float, hi: float) -> st.SearchStrategy[float]:
        if rule.type == "integer":
            assert lo == int(lo) and hi == int(hi), f"{name} is an integer with a bound that is not"
            return st.integers(int(lo), int(hi))
        return st.floats(lo, hi)

    inside = data.draw(kind(low, high))
    assert rule.check(inside) is None and not rule.out_of_range(inside)
    outside = data.draw(st.one_of(kind(high + 1, high + 10**6), kind(low - 10**6, low - 1)))
    violation = rule.check(outside)
    assert violation is not None and rule.out_of_range(outside)
    assert (violation.reason, violation.rule, violation.dimension, violation.field) == (
        "out-of-range", f"range:{name}", "accuracy", name)


@given(st.sampled_from(sorted(CHURN.fields)))
def test_a_missing_required_field_is_incomplete_and_a_missing_optional_one_is_fine(name: str) -> None:
    rule = CHURN.fields[name]
    violation = rule.check(None)
    if rule.required:
        assert violation is not None and (violation.reason, violation.dimension) == ("missing-field", "completeness")
    else:
        assert violation is None


@given(st.sampled_from([n for n, r in CHURN.fields.items() if r.categories]), st.text(min_size=1, max_size=12))
def test_categories_outside_the_declared_set_are_inconsistent(name: str, value: str) -> None:
    rule = CHURN.fields[name]
    assert rule.categories is not None
    violation = rule.check(value)
    if value in rule.categories:
        assert violation is None
    else:
        assert violation is not None and (violation.reason, violation.dimension) == ("unknown-category", "consistency")


@given(st.one_of(st.text(max_size=5), st.booleans()))
def test_a_number_field_refuses_strings_and_booleans(value: str | bool) -> None:
    violation = FieldRule("x", "number").check(value)
    assert violation is not None and violation.reason == "wrong-type" and violation.dimension == "accuracy"


@given(finite, finite, st.integers(0, 200))
def test_cross_field_rules_agree_with_python_arithmetic(total: float, monthly: float, tenure: int) -> None:
    rule = CrossFieldRule.compile("cover", "total <= monthly * (tenure + 1) * 1.5")
    expected = total <= monthly * (tenure + 1) * 1.5
    violation = rule.check({"total": total, "monthly": monthly, "tenure": tenure})
    assert (violation is None) == expected
    if violation is not None:
        assert violation.dimension == "consistency" and violation.rule == "cross:cover"
    assert rule.check({"total": total, "monthly": None, "tenure": tenure}) is None  # completeness is not its job


@pytest.mark.parametrize("text", ["__import__('os').system('true')", "a.b > 1", "len(a) > 1", "[a][0] > 1",
                                  "(lambda: 1)() > 0"])
def test_cross_field_rules_refuse_anything_but_arithmetic_and_comparisons(text: str) -> None:
    with pytest.raises(ConfigError):
        CrossFieldRule.compile("bad", text)


@given(st.lists(st.integers(0, 120), min_size=2, max_size=30))
def test_entity_history_accepts_non_decreasing_tenure_and_names_the_first_decrease(values: list[int]) -> None:
    history = EntityHistory(non_decreasing=("tenure_months",), immutable=("region",))
    for i, value in enumerate(values):
        violation = history.check("c1", {"tenure_months": value, "region": "north"})
        if i > 0 and value < max(values[:i]) and value < values[i - 1]:
            assert violation is not None and violation.rule == "non-decreasing:tenure_months"
            return
        assert violation is None
        history.remember("c1", {"tenure_months": value, "region": "north"})
    moved = history.check("c1", {"tenure_months": values[-1], "region": "south"})
    assert moved is not None and moved.rule == "immutable:region"


CATALOG = SchemaCatalog(Settings().schemas_dir)
RAW = topic_serde(CATALOG, Settings(topic_prefix="t."), EVENTS_RAW)


def encode(attributes: dict[str, AttributeValue], *, event_time: int | None = None, source: str = "churn") -> bytes:
    event: RawEvent = {"event_id": "e1", "entity_id": "cust-1", "event_time": now_ms() if event_time is None
                       else event_time, "source": source, "attributes": attributes}
    return RAW.encode(event)


def churn_attributes(seed: int, index: int, drift: str) -> dict[str, AttributeValue]:
    domain = ChurnDomain(seed=seed, customers=50, schedule=DriftSchedule.parse(drift, 400))
    return list(domain.events(index + 1))[index].attributes


drifts = st.sampled_from(["none", "abrupt@0.1", "gradual@0.1:0.5", "recurring@0.2:0.3", "concept@0.1",
                          "abrupt@0.3,gradual@0.45:0.1,concept@0.65,recurring@0.8:0.1"])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 399), drifts)
def test_every_generated_churn_event_passes_the_rules_whatever_the_drift(seed: int, index: int, drift: str) -> None:
    verdict = EventValidator(RAW, RuleSet.load(Settings().rules_path)).validate(
        encode(churn_attributes(seed, index, drift)))
    assert not isinstance(verdict, Rejection), verdict


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 1000), st.sampled_from(sorted(n for n, r in CHURN.fields.items() if r.required)))
def test_dropping_any_required_churn_field_is_reported_for_that_field(seed: int, name: str) -> None:
    attributes = churn_attributes(seed, 0, "none")
    del attributes[name]
    verdict = EventValidator(RAW, RuleSet.load(Settings().rules_path)).validate(encode(attributes))
    assert isinstance(verdict, Rejection)
    assert (verdict.reason, verdict.rule, verdict.dimension) == ("missing-field", f"required:{name}", "completeness")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 1000), st.sampled_from(sorted(NUMERIC)), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_non_finite_numbers_are_inaccurate_whatever_the_field(seed: int, name: str, bad: float) -> None:
    attributes = {**churn_attributes(seed, 0, "none"), name: bad}
    verdict = EventValidator(RAW, RuleSet.load(Settings().rules_path)).validate(encode(attributes))
    assert isinstance(verdict, Rejection) and (verdict.reason, verdict.rule) == ("non-finite-value", f"finite:{name}")


@pytest.mark.parametrize("offset_s, reason", [(3_600, "future-event-time"), (-2 * 86_400, "late-event")])
def test_timeliness_tolerances_from_the_rules_file(offset_s: int, reason: str) -> None:
    verdict = EventValidator(RAW, RuleSet.load(Settings().rules_path)).validate(
        encode(churn_attributes(1, 0, "none"), event_time=now_ms() + offset_s * 1000))
    assert isinstance(verdict, Rejection) and (verdict.reason, verdict.dimension) == (reason, "timeliness")


def test_a_resent_record_skips_the_rules_its_resending_breaks_but_no_others() -> None:
    validator = EventValidator(RAW, RuleSet.load(Settings().rules_path))
    old = encode(churn_attributes(1, 0, "none"), event_time=now_ms() - 3 * 86_400_000)
    assert isinstance(validator.validate(old), Rejection)
    assert not isinstance(validator.validate(old, resent=True), Rejection)
    broken = encode({**churn_attributes(1, 0, "none"), "age": 7}, event_time=now_ms() - 3 * 86_400_000)
    verdict = validator.validate(broken, resent=True)
    assert isinstance(verdict, Rejection) and verdict.reason == "out-of-range"


def test_an_event_of_a_source_the_file_does_not_declare_is_refused_and_counted_under_one_label() -> None:
    """The HTTP service's old default source, http, had no rules, so any attributes passed: "age": "old" was
    served. A made-up source per event must not grow the rules nor the metrics' labels either."""
    validator = EventValidator(RAW, RuleSet.load(Settings().rules_path))
    verdict = validator.validate(encode({"age": "old"}, source="http"))
    assert isinstance(verdict, Rejection)
    assert (verdict.reason, verdict.rule, verdict.dimension, verdict.source) == (
        "unknown-source", "declared-source", "consistency", "http")
    assert "source 'http' has no validation rules" in verdict.message and "churn" in verdict.message
    for i in range(1_000):
        assert isinstance(validator.validate(encode(churn_attributes(1, 0, "none"), source=f"made-up-{i}")),
                          Rejection)
    assert set(validator.rules.sources) == set(RULES.sources)
    assert validator.counters.records == {UNDECLARED: 1_001}
    assert validator.counters.dead_letters == {(UNDECLARED, "consistency", "unknown-source"): 1_001}


def with_default(tmp_path: Path, default: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(Settings().rules_path.read_text() + f"\ndefault_source: {default}\n")
    return path


def test_a_default_source_gives_its_rules_to_every_undeclared_source(tmp_path: Path) -> None:
    validator = EventValidator(RAW, RuleSet.load(with_default(tmp_path, "churn")))
    verdict = validator.validate(encode({**churn_attributes(1, 0, "none"), "age": "old"}, source="http"))
    assert isinstance(verdict, Rejection) and (verdict.reason, verdict.rule) == ("wrong-type", "type:age")
    assert not isinstance(validator.validate(encode(churn_attributes(1, 0, "none"), source="http")), Rejection)
    assert validator.counters.field_seen[(UNDECLARED, "age")] == 2


def test_a_default_source_the_file_does_not_declare_is_refused_when_it_loads(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="default_source 'http' .* is not a source the file declares"):
        RuleSet.load(with_default(tmp_path, "http"))


@pytest.mark.parametrize("name", NAMED)
def test_every_source_weir_produce_generates_has_rules_its_events_pass(name: str) -> None:
    validator = EventValidator(RAW, RuleSet.load(Settings().rules_path))
    verdicts = [validator.check(e.raw(name)) for e in open_source(name, 2_000, seed=3).events]
    assert name in RULES.sources and [v for v in verdicts if isinstance(v, Rejection)] == []
