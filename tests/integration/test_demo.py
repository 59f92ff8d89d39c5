"""`weir demo` (what `make demo` runs) end to end: a reconciled summary.json, its path printed last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from apps.processes import settings_env
from tests.support import render
from weir.kafka.admin import delete_topics
from weir.settings import Settings

REQUIRED_KEYS = {"events_produced", "events_dead_lettered", "predictions", "served", "feedback_sent",
                 "feedback_learned", "alerts", "accuracy"}


# A retraining every 400 labels: 1,500 events are too few for the drift alerts to trigger one, and the closed
# loop's path through the real back (the window read back from the topics, the signed version) must run here.
POLICY = """\
model: default
retrain: {on_alerts: [], every_labels: 400, method: full, window_labels: 300}
promotion: {min_labels: 100, step_labels: 50}
business: {true_positive: 40, false_positive: -5, false_negative: -60, currency: EUR}
"""


def test_demo_writes_a_reconciled_summary_and_prints_its_path_last(broker: Settings, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    done = subprocess.run(
        # 15 s of events: the retraining at label 400 runs in the worker's retrainer, a child process that takes
        # seconds to start, and registers its challenger only when done
        [sys.executable, "-m", "apps", "demo", "--events", "1500", "--rate", "100", "--runs-dir",
         str(tmp_path / "runs"), "--policy", str(policy)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    *_, report_line, last = done.stdout.strip().splitlines()
    assert last.startswith("summary: ") and report_line.startswith("report: ")
    path = Path(last.removeprefix("summary: "))
    assert path.parent.parent == tmp_path / "runs" and path.name == "summary.json"
    assert (path.parent / "policy.yaml").read_text() == POLICY
    summary = json.loads(path.read_text())
    assert summary["problems"] == [] and summary["undecodable_records"] == {}
    try:
        assert REQUIRED_KEYS <= set(summary)
        assert summary["served"] == 1500 and summary["served_twice"] == 0  # each id once, resent ones included
        assert summary["events_produced"] == 1500 + summary["events_resent"]
        assert summary["events_dead_lettered"] == summary["duplicates_dead_lettered"] == summary["events_resent"]
        assert summary["events_produced"] == summary["served"] + summary["events_dead_lettered"]
        assert summary["feedback_learned"] == 1500  # every event's label, once
        assert summary["feedback_learned"] + summary["feedback_late"] + summary["feedback_unmatched"] + \
            summary["feedback_duplicate"] == summary["feedback_sent"]
        assert [p["at"] for p in summary["drift"]["points"]] == [p["at"] for p in summary["drift_schedule"]]
        assert all("alerts" in p for p in summary["drift"]["points"])
        retrain = next(d for d in summary["decisions"] if d["action"] == "retrain")  # on the schedule
        lineage = retrain["evidence"]
        assert lineage["trigger"] == "schedule" and lineage["window"].startswith("300 labels"), lineage
        assert ".features[" in lineage["offsets"] and ".feedback[" in lineage["offsets"], lineage
        v2 = summary["versions"]["v2"]
        assert v2["parent_version"] == "v1", v2
        assert summary["learner_restarts"] == 1  # the demo kills the learn stage once and it loses nothing
        assert summary["reconciled"] is True and summary["drained"] is True
        assert 0.0 <= summary["accuracy"] <= 1.0
        assert summary["source"] == "churn" and [p["kind"] for p in summary["drift_schedule"]] == [
            "abrupt", "gradual", "concept", "recurring"]
        quality = summary["quality"]
        assert quality["records"] == summary["events_produced"] and set(quality["dimensions"]) == {
            "accuracy", "completeness", "consistency", "timeliness"}
        assert 0.0 < quality["fields"]["satisfaction_score"]["missing_rate"] < 0.3  # optional, often unanswered
        page = Path(report_line.removeprefix("report: "))
        assert page == path.parent / "report.html" and (path.parent / "report" / "business.png").exists()
        _the_report_shows_the_summary(page, summary)
        _an_experiment_runs_on_the_demos_topics(broker, summary, tmp_path)
        _a_report_of_the_demos_topic_range_agrees(broker, summary, tmp_path)
    finally:
        delete_topics(broker.with_overrides(topic_prefix=summary["topic_prefix"]))


def _an_experiment_runs_on_the_demos_topics(broker: Settings, summary: dict[str, Any], tmp_path: Path) -> None:
    """`weir experiment run` on the run's topic range: three candidates tracked in MLflow, the best registered."""
    (tmp_path / "spec.yaml").write_text("name: on-the-demo\ndata: {since: 0}\ncandidates:\n"
                                        "  - {factory: logistic_regression, params: {lr: [0.01, 0.1]}}\n"
                                        "  - {factory: hoeffding_tree}\n")
    env = {**settings_env(broker.with_overrides(topic_prefix=summary["topic_prefix"])), "MLFLOW_TRACKING_URI": ""}
    done = subprocess.run(
        [sys.executable, "-m", "apps", "experiment", "run", str(tmp_path / "spec.yaml"), "--runs-dir",
         str(tmp_path / "runs"), "--no-progress", "--register-best", "churn-experiment"],
        capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "3 candidates over 1500 events, 1500 labels" in done.stdout and "registered churn-experiment v1" in \
        done.stdout, done.stdout


def _a_report_of_the_demos_topic_range_agrees(broker: Settings, summary: dict[str, Any], tmp_path: Path) -> None:
    """`weir report --since` on the run's topics: the same events, versions and answers as the demo's own
    summary, placed by time instead of index, rendered without error."""
    env = settings_env(broker.with_overrides(topic_prefix=summary["topic_prefix"]))
    done = subprocess.run(
        [sys.executable, "-m", "apps", "report", "--since", "0", "--out", str(tmp_path / "range"), "--policy",
         str(tmp_path / "policy.yaml"), "--no-progress"], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.strip() == f"report: {tmp_path / 'range' / 'report.html'}"
    ranged = json.loads((tmp_path / "range" / "summary.json").read_text())
    assert (ranged["events"], ranged["served"], ranged["labels"]) == (1500, 1500, 1500)

    def scored(timeline: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
        totals: dict[str, tuple[int, int]] = {}
        for stretch in timeline:
            for version, c in stretch["versions"].items():
                n, right = totals.get(version, (0, 0))
                totals[version] = (n + c["n"], right + c["tp"] + c["tn"])
        return totals

    assert scored(ranged["version_timeline"]) == scored(summary["version_timeline"])
    shown = render(tmp_path / "range" / "report.html")
    assert shown.errors == [] and len(shown.image_widths) == 8 and all(w > 0 for w in shown.image_widths)


def _the_report_shows_the_summary(page: Path, summary: dict[str, Any]) -> None:
    """Rendered by a real headless Chromium: no console error, every image decodes, and the numbers under the
    figures are the summary's (the money recomputed here from its confusion counts)."""
    shown = render(page)
    assert shown.errors == [] and len(shown.image_widths) == 8 and all(w > 0 for w in shown.image_widths)
    served = [r for r in shown.tables["accuracy"] if r["version"] == "served"]
    assert [r["accuracy"] for r in served] == [str(s["accuracy"]) for s in summary["served_accuracy_timeline"]]
    quality = {r["dimension"]: float(r["rate"]) for r in shown.tables["quality"] if r.get("dimension", "-") != "-"}
    assert quality == {d: v["rate"] for d, v in summary["quality"]["dimensions"].items()}
    gains = {r["version"]: float(r["total_gain"]) for r in shown.tables["business"] if r.get("total_gain", "-") != "-"}
    expected: dict[str, float] = {}
    for stretch in summary["version_timeline"]:
        for version, c in stretch["versions"].items():
            value = 40 * c["tp"] - 5 * c["fp"] - 60 * c["fn"]
            expected[version] = expected.get(version, 0.0) + value - (-60 * (c["tp"] + c["fn"]))
    assert gains == pytest.approx(expected), (gains, expected)
