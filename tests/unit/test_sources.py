"""Event sources: the churn domain and its drift schedule, river's streams, file replay, the label policy."""

from __future__ import annotations

import random
import re
import statistics
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from producers.churn import ChurnDomain
from producers.event import LabelledEvent
from producers.files import FileColumns, file_source
from producers.labels import FeedbackPolicy
from producers.schedule import DriftPoint, DriftSchedule
from producers.sources import open_source
from weir.contract.feedback import LabelKind, fits
from weir.contract.records import AttributeValue, Label
from weir.errors import ConfigError, UsageError

N = 20_000
SCHEDULE = DriftSchedule.parse("abrupt@0.3,gradual@0.45:0.1,concept@0.65,recurring@0.8:0.1", N)


@pytest.fixture(scope="module")
def churn() -> list[LabelledEvent]:
    return list(ChurnDomain(seed=5, schedule=SCHEDULE).events(N, event_time=lambda i: i))


def number(value: AttributeValue) -> float:
    """A numeric attribute's value; a failure for anything else (a missing value, a category)."""
    assert isinstance(value, int | float), f"{value!r} is not a number"
    return float(value)


def churned(event: LabelledEvent) -> bool:
    """A churn event's label: whether the customer left."""
    assert isinstance(event.label, bool), f"{event.event_id} has label {event.label!r}"
    return event.label


def mean(events: list[LabelledEvent], field: str) -> float:
    return statistics.fmean(number(e.attributes[field]) for e in events)


def test_the_schedule_parses_fractions_and_counts() -> None:
    assert SCHEDULE.points == (
        DriftPoint("abrupt", 6_000), DriftPoint("gradual", 9_000, 2_000), DriftPoint("concept", 13_000),
        DriftPoint("recurring", 16_000, 2_000))
    assert DriftSchedule.parse("concept@5000", N).points == (DriftPoint("concept", 5_000),)
    assert DriftSchedule.parse("none", N).points == ()
    with pytest.raises(ConfigError):
        DriftSchedule.parse("sideways@0.5", N)


def test_churn_events_have_many_fields_recurring_entities_and_a_realistic_label(churn: list[LabelledEvent]) -> None:
    assert 10 <= len(churn[0].attributes) <= 20
    kinds = {type(v) for e in churn[:100] for v in e.attributes.values()}
    assert {int, float, str, bool} <= kinds
    visits = Counter(e.entity_id for e in churn)
    assert visits.most_common(1)[0][1] > 50 and len(visits) > 1_000  # some come often, most now and then
    assert 0.1 < statistics.fmean(churned(e) for e in churn) < 0.4
    assert 0.03 < statistics.fmean(e.attributes["satisfaction_score"] is None for e in churn) < 0.15


def test_the_same_seed_gives_the_same_stream() -> None:
    a = list(ChurnDomain(seed=9).events(500, event_time=lambda i: i))
    assert a == list(ChurnDomain(seed=9).events(500, event_time=lambda i: i))
    assert a != list(ChurnDomain(seed=10).events(500, event_time=lambda i: i))


def test_abrupt_drift_moves_charges_at_its_point_and_not_before(churn: list[LabelledEvent]) -> None:
    before, just_before, after = churn[3_000:5_000], churn[5_000:6_000], churn[6_000:8_000]
    assert abs(mean(just_before, "monthly_charges") - mean(before, "monthly_charges")) < 3
    assert mean(after, "monthly_charges") > 1.25 * mean(before, "monthly_charges")


def test_gradual_drift_ramps_usage_over_its_width(churn: list[LabelledEvent]) -> None:
    start, middle, end = (mean(churn[i:i + 600], "data_usage_gb") for i in (8_400, 9_700, 10_800))
    assert start < middle < end and end > 1.5 * start


def test_recurring_drift_comes_back(churn: list[LabelledEvent]) -> None:
    before, during, after = (mean(churn[i:i + 1_500], "login_days_30d") for i in (14_300, 16_300, 18_300))
    assert during < 0.75 * before and abs(after - before) < 0.1 * before


def test_concept_drift_changes_the_label_function_not_the_inputs(churn: list[LabelledEvent]) -> None:
    def churn_rate_by_price(events: list[LabelledEvent]) -> float:
        expensive = [churned(e) for e in events if number(e.attributes["monthly_charges"]) > 90]
        cheap = [churned(e) for e in events if number(e.attributes["monthly_charges"]) < 50]
        return statistics.fmean(expensive) - statistics.fmean(cheap)

    before, after = churn[10_500:13_000], churn[13_000:15_500]
    assert abs(mean(after, "support_calls_30d") - mean(before, "support_calls_30d")) < 0.2
    assert churn_rate_by_price(after) > churn_rate_by_price(before) + 0.15


@pytest.mark.parametrize("name", ["sea", "agrawal", "hyperplane", "simple"])
def test_named_sources_give_labelled_avro_ready_events(name: str) -> None:
    events = list(open_source(name, 300, schedule=DriftSchedule.parse("concept@0.5", 300)).events)
    assert len(events) == 300 and len({e.event_id for e in events}) == 300
    for e in events[:20]:
        assert all(isinstance(k, str) for k in e.attributes)
        assert all(isinstance(v, bool | int | float | str) for v in e.attributes.values())
        assert isinstance(e.label, bool | int | float | str)


def test_an_unknown_source_says_what_exists() -> None:
    with pytest.raises(ConfigError, match="churn, simple, sea"):
        open_source("nope", 10)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_replays_in_event_time_order_with_mapped_columns(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({
        "customer": ["a", "b", "a"], "churned": [True, None, False], "ts": ["2026-01-03", "2026-01-01", "2026-01-02"],
        "spend": [10.5, None, 7.0], "tier": ["gold", "silver", "gold"], "delay": [3.0, 1.0, 2.0],
    })
    path = tmp_path / f"history{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    source = file_source(path, FileColumns("customer", "churned", event_time="ts", label_delay_s="delay",
                                           attributes={"spend": "amount", "tier": "tier"}))
    events = list(source.events)
    assert [e.entity_id for e in events] == ["b", "a", "a"]
    assert [e.event_time_ms for e in events] == sorted(e.event_time_ms for e in events)
    assert events[0].event_time_ms == 1_767_225_600_000  # 2026-01-01T00:00Z
    assert events[0].attributes == {"amount": None, "tier": "silver"} and events[0].label is None
    assert events[1].attributes == {"amount": 7.0, "tier": "gold"} and events[1].label is False
    assert [e.label_delay_s for e in events] == [1.0, 2.0, 3.0]


def test_a_file_without_the_named_columns_says_which(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="no column.*entity_id"):
        file_source(path, FileColumns("entity_id", "label"))


@pytest.mark.parametrize("content", ["entity_id,label,spend\n", ""], ids=["header only", "empty"])
def test_a_file_with_no_rows_is_refused_with_exit_code_2(tmp_path: Path, content: str) -> None:
    path = tmp_path / "nothing.csv"
    path.write_text(content)
    with pytest.raises(UsageError, match="there are no events in it") as refused:
        file_source(path, FileColumns("entity_id", "label"))
    assert refused.value.exit_code == 2


@pytest.mark.parametrize("kind, labels, refused", [
    ("binary", ["yes", "true", None, "maybe"], "3 label(s) in column 'label' would be dead-lettered, not learned "
                                               "(row 1 'yes', row 2 'true', row 4 'maybe'): label 'yes' (str) is "
                                               "not a binary label"),
    ("binary", [1, 0, 2], "(row 3 2): label 2 (int) is not a binary label"),
    ("regression", [1.5, float("inf")], "(row 2 inf): label is inf"),
], ids=["words", "a 2", "inf"])
def test_labels_the_learners_would_refuse_are_refused_before_anything_is_sent(
        tmp_path: Path, kind: LabelKind, labels: list[Label | None], refused: str) -> None:
    path = tmp_path / "labels.csv"
    pd.DataFrame({"entity_id": [f"c{i}" for i in range(len(labels))], "label": labels}).to_csv(path, index=False)
    with pytest.raises(ConfigError, match=re.escape(refused)):
        file_source(path, FileColumns("entity_id", "label"), label_kind=kind)
    file_source(path, FileColumns("entity_id", "label"))  # unchecked where the labels are not sent (a profile)


@pytest.mark.parametrize("kind, labels", [("binary", ["true", "false", ""]), ("binary", ["1", "0", "1"]),
                                          ("multiclass", ["gold", "silver", ""]), ("regression", ["1.5", "-2", ""])])
def test_labels_of_the_learners_kind_pass(tmp_path: Path, kind: LabelKind, labels: list[str]) -> None:
    """An empty cell is an event whose label never comes, not a bad label."""
    path = tmp_path / "labels.csv"
    path.write_text("entity_id,label\n" + "".join(f"c{i},{label}\n" for i, label in enumerate(labels)))
    events = list(file_source(path, FileColumns("entity_id", "label"), label_kind=kind).events)
    assert len(events) == 3 and all(fits(e.label, kind) for e in events if e.label is not None)


def event(i: int, label: Label | None = True, delay: float | None = None) -> LabelledEvent:
    return LabelledEvent(f"e{i}", "c", i, {}, label, delay)


def test_label_loss_and_duplicates_follow_their_shares() -> None:
    rng, policy = random.Random(1), FeedbackPolicy("fixed:2", loss=0.1, duplicate=0.05)
    sends = [policy.sends(event(i), rng) for i in range(20_000)]
    assert 0.09 < sum(not s for s in sends) / 20_000 < 0.11
    assert 0.04 < sum(len(s) == 2 for s in sends) / 18_000 < 0.06
    assert all(s[0] == 2.0 and (len(s) == 1 or s[1] >= 2.0) for s in sends if s)


def test_delays_fixed_exponential_and_from_the_data() -> None:
    rng = random.Random(2)
    exp = [FeedbackPolicy("exp:3").sends(event(i), rng)[0] for i in range(5_000)]
    assert 2.7 < statistics.fmean(exp) < 3.3 and min(exp) >= 0
    assert FeedbackPolicy("column").sends(event(1, delay=7.5), rng) == [7.5]
    assert FeedbackPolicy("1.5").sends(event(1), rng) == [1.5]
    assert FeedbackPolicy().sends(event(1, label=None), rng) == []  # the data has no label for it
    with pytest.raises(ConfigError):
        FeedbackPolicy("column").sends(event(1), rng)
    with pytest.raises(ConfigError):
        FeedbackPolicy("soon")
