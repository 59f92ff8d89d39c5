"""The HTTP service's logic without a broker or a server: request bodies, the front's rules and routing applied to
requests, the records a request leaves, refusals and their dead letters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from apps.service.inference import Inference, Refusal, Served, source_rules
from apps.service.metrics import HttpMetrics
from apps.service.payloads import Answer, PayloadError, labels_of, oip_events, oip_response, parse_json, simple_event
from producers.churn import ChurnDomain
from streams.validate.stage import ValidateStage
from weir.clock import now_ms
from weir.contract.deadletter import read_headers
from weir.contract.messages import InRecord, OutRecord
from weir.contract.records import RawEvent
from weir.contract.serde import SchemaCatalog, topic_serde
from weir.contract.served import SERVED_BY, SERVED_SIGNATURE
from weir.contract.topics import EVENTS_RAW, PREDICTIONS
from weir.errors import ConfigError
from weir.registry.records import routing_record, version_record
from weir.registry.view import ModelRegistry
from weir.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(topic_prefix="u.", home=tmp_path, http_source="churn")


def churn_events(n: int, seed: int = 3) -> list[RawEvent]:
    return [{"event_id": e.event_id, "entity_id": e.entity_id, "event_time": now_ms(), "source": "churn",
             "attributes": e.attributes} for e in ChurnDomain(seed=seed, customers=5_000).events(n)]


def registry(mode: str = "basic", percent: float = 0.0, versions: tuple[str, ...] = ("v1",)) -> ModelRegistry:
    r = ModelRegistry("default")
    for v in versions:
        r.apply(version_record("default", v, "logistic_regression", {}))
    r.apply(routing_record("default", mode, versions[0], list(versions[1:]), percent))
    return r


def inference(settings: Settings, catalog: SchemaCatalog, reg: ModelRegistry) -> Inference:
    return Inference(settings, catalog, reg, CollectorRegistry())


def served(outcome: Served | Refusal) -> Served:
    assert isinstance(outcome, Served), outcome
    return outcome


def refused(outcome: Served | Refusal) -> Refusal:
    assert isinstance(outcome, Refusal), outcome
    return outcome


def as_read(record: OutRecord) -> InRecord:
    return InRecord(record.topic, 0, 0, 0, record.key, record.value, list(record.headers or []))


# --- bodies ---------------------------------------------------------------------------------------------------------

def test_a_simple_event_gets_an_id_and_a_time_when_it_names_none() -> None:
    event = simple_event({"entity_id": "c1", "attributes": {"age": 40, "plan": "basic", "autopay": True}},
                         now_ms=123, default_source="churn")
    assert event["entity_id"] == "c1" and event["event_time"] == 123 and event["source"] == "churn"
    assert len(event["event_id"]) == 32 and event["attributes"] == {"age": 40, "plan": "basic", "autopay": True}


@pytest.mark.parametrize("body, says", [
    ([1, 2], "JSON object"),
    ({"attributes": {}}, "entity_id is missing"),
    ({"entity_id": 7, "attributes": {}}, "entity_id must be a string"),
    ({"entity_id": "c", "attributes": {"age": [1]}}, "attribute 'age' is a list"),
    ({"entity_id": "c", "attributes": {}, "age": 3}, "unknown fields: age"),
    ({"entity_id": "c", "attributes": {}, "event_time": "yesterday"}, "epoch milliseconds"),
])
def test_a_simple_body_that_is_no_event_says_why(body: Any, says: str) -> None:
    with pytest.raises(PayloadError, match=says):
        simple_event(body, now_ms=1, default_source="churn")


def tensor(name: str, datatype: str, data: list[Any], shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def test_inference_inputs_are_columns_and_each_row_is_an_event() -> None:
    request_id, events = oip_events({"id": "r9", "inputs": [
        tensor("entity_id", "BYTES", ["a", "b"]), tensor("event_id", "BYTES", ["e1", "e2"]),
        tensor("age", "INT64", [[30], [40]], [2, 1]), tensor("charges", "FP32", [1, 2.5]),
        tensor("autopay", "BOOL", [True, None]),
    ]}, now_ms=5, default_source="churn")
    assert request_id == "r9"
    assert events == [
        {"event_id": "e1", "entity_id": "a", "event_time": 5, "source": "churn",
         "attributes": {"age": 30, "charges": 1.0, "autopay": True}},
        {"event_id": "e2", "entity_id": "b", "event_time": 5, "source": "churn",
         "attributes": {"age": 40, "charges": 2.5, "autopay": None}},
    ]
    _, (one,) = oip_events({"parameters": {"entity_id": "c", "source": "simple"},
                            "inputs": [tensor("x1", "FP64", [0.5])]}, now_ms=5, default_source="churn")
    assert one["entity_id"] == "c" and one["source"] == "simple" and one["attributes"] == {"x1": 0.5}


@pytest.mark.parametrize("inputs, says", [
    ([tensor("a", "INT64", [1, 2]), tensor("b", "INT64", [1])], "different lengths"),
    ([tensor("a", "INT64", [1.5])], "not INT64"),
    ([tensor("a", "INT64", [True])], "not INT64"),
    ([tensor("a", "COMPLEX", [1])], "datatype 'COMPLEX'"),
    ([tensor("a", "INT64", [1, 2], [3])], r"shape \[3\] but 2 values"),
    ([tensor("a", "INT64", [1, 2], [1, 2])], "not \\[n\\] or \\[n, 1\\]"),
    ([tensor("a", "INT64", [1]), tensor("a", "INT64", [2])], "same name"),
    ([tensor("a", "INT64", [])], "no events"),
])
def test_inference_inputs_that_are_no_rows_say_why(inputs: list[dict[str, Any]], says: str) -> None:
    with pytest.raises(PayloadError, match=says):
        oip_events({"parameters": {"entity_id": "c"}, "inputs": inputs}, now_ms=1, default_source="churn")


def test_a_null_event_field_takes_its_default_and_a_body_nested_too_deep_is_refused() -> None:
    _, (event,) = oip_events({"inputs": [tensor("entity_id", "BYTES", ["c"]), tensor("event_time", "INT64", [None]),
                                         tensor("source", "BYTES", [None])]}, now_ms=7, default_source="churn")
    assert (event["event_time"], event["source"]) == (7, "churn")
    with pytest.raises(PayloadError, match="nested too deeply"):
        parse_json(b"[" * 100_000)


def test_several_events_carry_their_own_entities() -> None:
    with pytest.raises(PayloadError, match="as inputs"):
        oip_events({"parameters": {"entity_id": "c"}, "inputs": [tensor("a", "INT64", [1, 2])]}, now_ms=1,
                   default_source="churn")


def test_the_response_names_one_version_only_when_one_served_every_row() -> None:
    one = Answer("e1", "a", "m", "v1", "champion", True, 0.8)
    other = Answer("e2", "b", "m", "v2", "canary", False, 0.3)
    both = oip_response("m", "r1", [one, other])
    assert "model_version" not in both and both["id"] == "r1"
    columns = {o["name"]: o for o in both["outputs"]}
    assert columns["predicted_label"]["datatype"] == "BOOL" and columns["predicted_label"]["data"] == [True, False]
    assert columns["model_version"]["data"] == ["v1", "v2"] and columns["score"]["data"] == [0.8, 0.3]
    assert oip_response("m", None, [one])["model_version"] == "v1"


def test_labels_are_one_or_a_list() -> None:
    assert labels_of({"event_id": "e", "entity_id": "c", "label": True}, now_ms=9) == [
        {"event_id": "e", "entity_id": "c", "label": True, "label_time": 9}]
    assert len(labels_of([{"event_id": "e", "entity_id": "c", "label": 1, "label_time": 3}] * 2, now_ms=9)) == 2
    with pytest.raises(PayloadError, match="label must be"):
        labels_of({"event_id": "e", "entity_id": "c", "label": None}, now_ms=9)


# --- the front's work on requests -----------------------------------------------------------------------------------

def test_a_served_request_leaves_its_raw_event_features_and_predictions(settings: Settings,
                                                                       catalog: SchemaCatalog) -> None:
    service = inference(settings, catalog, registry("shadow", versions=("v1", "v2")))
    events = churn_events(3)
    outcome = served(service.serve(events, path="/predict"))
    assert [a.event_id for a in outcome.answers] == [e["event_id"] for e in events]
    assert all(a.model_version == "v1" and a.role == "champion" for a in outcome.answers)
    topics = [r.topic for r in outcome.records]
    assert topics == ["u.events.raw", "u.features", "u.predictions", "u.predictions"] * 3
    predictions = topic_serde(catalog, settings, PREDICTIONS)
    first = [predictions.decode(r.value) for r in outcome.records[2:4]]
    assert [(p["model_version"], p["role"], p["served"]) for p in first] == [("v2", "shadow", False),
                                                                              ("v1", "champion", True)]
    raw = topic_serde(catalog, settings, EVENTS_RAW)
    assert raw.decode(outcome.records[0].value) == events[0]


def test_the_front_passes_by_what_the_service_served_and_serves_a_forged_claim(settings: Settings,
                                                                               catalog: SchemaCatalog) -> None:
    service = inference(settings, catalog, registry())
    raw = served(service.serve(churn_events(1), path="/predict")).records[0]
    front = ValidateStage(settings, catalog)
    event, remembered = front.check(as_read(raw))  # not served again, but remembered as served
    assert event is None and [r.topic for r in remembered] == [front.served.changelog]
    assert front.validator.counters.served_elsewhere["http"] == 1
    forged = OutRecord(raw.topic, raw.key, raw.value, [(SERVED_BY, b"http"), (SERVED_SIGNATURE, b"0" * 64)])
    event, records = ValidateStage(settings, catalog).check(as_read(forged))  # a front that has not seen the id
    assert event is not None and records[0].topic == "u.events.valid"
    assert front.check(as_read(forged))[0] is None  # here it is a duplicate of what the service served
    other_key = ValidateStage(settings.with_overrides(model_key="another deployment's key"), catalog)
    assert other_key.check(as_read(raw))[0] is not None


def test_a_bad_event_refuses_the_request_and_only_it_is_dead_lettered(settings: Settings,
                                                                      catalog: SchemaCatalog) -> None:
    service = inference(settings, catalog, registry())
    good, bad = churn_events(2)
    bad["attributes"] = {**bad["attributes"], "age": 5}
    refusal = refused(service.serve([good, bad], path="/v2/models/default/infer"))
    assert refusal.status == 422
    assert refusal.problems == [{"event_id": bad["event_id"], "reason": "out-of-range", "rule": "range:age",
                                 "dimension": "accuracy", "message": "age=5 outside [18, 100]"}]
    (letter,) = refusal.letters
    headers = read_headers(letter.headers)
    assert letter.topic == "u.events.dlq" and letter.key == bad["entity_id"].encode()
    assert topic_serde(catalog, settings, EVENTS_RAW).decode(letter.value) == bad
    assert headers["original.topic"] == "u.events.raw" and headers["reason"] == "out-of-range"
    assert headers["received.by"] == "http" and headers["received.path"] == "/v2/models/default/infer"


def test_an_event_of_a_source_without_rules_is_refused_not_served(settings: Settings, catalog: SchemaCatalog,
                                                                  tmp_path: Path) -> None:
    """The old default source, http, had no rules: "age": "old" was served. Now the service starts only with a
    source that has rules (churn by default), and an event naming another source is refused."""
    assert "age" in source_rules(Settings(home=tmp_path)).fields
    with pytest.raises(ConfigError, match="source 'http' .* has no validation rules"):
        source_rules(settings.with_overrides(http_source="http"))
    (event,) = churn_events(1)
    refusal = refused(inference(settings, catalog, registry()).serve(
        [{**event, "source": "http", "attributes": {**event["attributes"], "age": "old"}}], path="/predict"))
    assert refusal.status == 422 and refusal.problems[0]["reason"] == "unknown-source"
    assert read_headers(refusal.letters[0].headers)["reason"] == "unknown-source"


def test_a_body_that_is_no_request_is_dead_lettered_as_it_came(settings: Settings, catalog: SchemaCatalog) -> None:
    refusal = inference(settings, catalog, registry()).refuse_body(422, "the body is not JSON", b"{oops",
                                                                    topic="feedback", path="/v2/feedback")
    (letter,) = refusal.letters
    assert refusal.as_json() == {"error": "the body is not JSON"} and letter.value == b"{oops"
    assert read_headers(letter.headers)["original.topic"] == "u.feedback"


def test_an_entity_gets_the_arm_the_stream_router_gives_it(settings: Settings, catalog: SchemaCatalog) -> None:
    reg = registry("canary", 30.0, ("v1", "v2"))
    outcome = served(inference(settings, catalog, reg).serve(churn_events(400), path="/predict"))
    assert {a.model_version for a in outcome.answers} == {"v1", "v2"}
    assert all(a.model_version == reg.serving(a.entity_id) for a in outcome.answers)
    assert all(a.role == ("canary" if a.model_version == "v2" else "champion") for a in outcome.answers)


def test_a_version_path_serves_that_version_unless_it_is_a_shadow(settings: Settings,
                                                                  catalog: SchemaCatalog) -> None:
    reg = registry("canary", 1.0, ("v1", "v2", "v3"))  # v2 canary at 1%, v3 shadow
    service = inference(settings, catalog, reg)
    events = churn_events(20)
    outcome = served(service.serve(events, path="/v2/models/default/versions/v2/infer", version="v2"))
    assert {a.model_version for a in outcome.answers} == {"v2"}
    assert refused(service.serve(events, path="/", version="v3")).status == 409
    assert refused(service.serve(events, path="/", version="v9")).status == 404


def test_a_retried_event_id_is_answered_again_and_written_once(settings: Settings, catalog: SchemaCatalog) -> None:
    service = inference(settings, catalog, registry())
    events = churn_events(2)
    first = served(service.serve(events[:1], path="/predict"))
    assert refused(service.serve(events[:1], path="/predict")).status == 409  # still being written
    service.settle(first, written=True)
    again = served(service.serve(events, path="/predict"))
    assert again.answers[0] == first.answers[0] and again.fresh == {events[1]["event_id"]}
    assert [r.topic for r in again.records] == ["u.events.raw", "u.features", "u.predictions"]  # the second only
    service.settle(again, written=False)  # not written: served anew next time
    assert served(service.serve(events[1:], path="/predict")).fresh == {events[1]["event_id"]}
    assert refused(service.serve([events[0], events[0]], path="/predict")).status == 422


@pytest.mark.parametrize("change, field, says", [
    ({"entity_id": "someone-else"}, "entity_id", "not 'someone-else'"),
    ({"source": "simple"}, "source", "for source 'churn', not 'simple'"),
    ({"attributes": {"age": 77}}, "attributes", "with other attributes"),
])
def test_an_answered_event_id_is_never_served_again_for_another_event(
        settings: Settings, catalog: SchemaCatalog, change: dict[str, Any], field: str, says: str) -> None:
    """Two requests with one event id and another entity were both served: two served predictions for one id."""
    service = inference(settings, catalog, registry())
    first, other = churn_events(2)
    answered = served(service.serve([first], path="/predict"))
    service.settle(answered, written=True)
    attributes = {**first["attributes"], **change.get("attributes", {})}
    reused: RawEvent = {**first, "entity_id": change.get("entity_id", first["entity_id"]),
                        "source": change.get("source", first["source"]), "attributes": attributes}
    for events, path in (([reused], "/predict"), ([other, reused], "/v2/models/default/infer")):
        refusal = refused(service.serve(events, path=path))
        assert refusal.status == 409 and refusal.letters == [], refusal
        (problem,) = refusal.problems
        assert (problem["event_id"], problem["reason"], problem["field"]) == (first["event_id"], "event-id-reused",
                                                                              field)
        assert problem["message"].startswith(f"event {first['event_id']} was answered ") and says in problem["message"]
        assert "served once" in refusal.message
    assert served(service.serve([other], path="/predict")).fresh == {other["event_id"]}  # refused: not remembered


def test_a_retry_without_its_time_is_the_same_event_and_an_id_older_than_the_memory_is_not_known(
        settings: Settings, catalog: SchemaCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server stamps an event that names no time, so a retry's time differs from the first's."""
    monkeypatch.setattr("apps.service.inference.RECENT_ANSWERS", 2)
    service = inference(settings, catalog, registry())
    events = churn_events(3)
    for event in events:
        service.settle(served(service.serve([event], path="/predict")), written=True)
    again = served(service.serve([{**events[-1], "event_time": events[-1]["event_time"] + 1_500}], path="/predict"))
    assert again.records == [] and again.fresh == frozenset()
    assert served(service.serve([events[0]], path="/predict")).fresh == {events[0]["event_id"]}  # forgotten


def test_a_retry_is_answered_from_memory_before_the_entity_rules_see_it(settings: Settings,
                                                                        catalog: SchemaCatalog) -> None:
    """A customer's tenure never goes back: an event retried after a later one of its customer would break the
    rule, but it was answered already."""
    service = inference(settings, catalog, registry())
    (early,) = churn_events(1)
    tenure = early["attributes"]["tenure_months"]
    assert isinstance(tenure, int)
    late: RawEvent = {**early, "event_id": "later", "attributes": {**early["attributes"], "tenure_months": tenure + 1}}
    for event in (early, late):
        service.settle(served(service.serve([event], path="/predict")), written=True)
    again = served(service.serve([early], path="/predict"))
    assert again.records == [] and again.answers[0].event_id == early["event_id"]


def test_no_champion_is_a_503_with_the_event_dead_lettered(settings: Settings, catalog: SchemaCatalog) -> None:
    refusal = refused(inference(settings, catalog, ModelRegistry("default")).serve(churn_events(1), path="/predict"))
    assert refusal.status == 503 and refusal.problems[0]["reason"] == "no-champion" and len(refusal.letters) == 1


def test_labels_of_another_kind_are_refused(settings: Settings, catalog: SchemaCatalog) -> None:
    service = inference(settings, catalog, registry())
    records = service.label([{"event_id": "e", "entity_id": "c", "label": True, "label_time": now_ms()}], path="/")
    assert isinstance(records, list) and [r.topic for r in records] == ["u.feedback"]
    refusal = service.label([{"event_id": "e", "entity_id": "c", "label": "maybe", "label_time": now_ms()}],
                            path="/v2/feedback")
    assert isinstance(refusal, Refusal)
    assert refusal.status == 422 and refusal.problems[0]["reason"] == "unsupported-label"
    assert read_headers(refusal.letters[0].headers)["original.topic"] == "u.feedback"


def test_requests_the_client_ended_are_counted_not_timed() -> None:
    """A body that took 10 s to not arrive is the client's time: in the latency histogram it would fire
    WeirHttpSlow."""
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    for status, seconds in ((200, 0.004), (408, 10.0), (499, 3.0)):
        metrics.observe("/predict", status, seconds)
    assert registry.get_sample_value("weir_http_request_seconds_count", {"route": "/predict"}) == 1
    assert registry.get_sample_value("weir_http_request_seconds_sum", {"route": "/predict"}) == 0.004
    assert [registry.get_sample_value("weir_http_requests_total", {"route": "/predict", "status": s})
            for s in ("200", "408", "499")] == [1, 1, 1]
