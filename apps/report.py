"""`weir report`: a demo run, an experiment or a topic range as one self-contained HTML page and PNG images.

Every figure is drawn with matplotlib from the run's own record (a demo's
summary.json, an experiment's MLflow runs, a topic range's summary read from
the topics) and written twice: as a PNG file
beside the page, and inside the page as a data URI, so the page travels as
one file. Under each figure the page lists the numbers it plots, in a table a
person (or a test) can check against the summary.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  # after choosing the backend
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure as Canvas  # noqa: E402

from apps.timelines import event_index  # noqa: E402
from weir.contract.serde import SchemaCatalog  # noqa: E402
from weir.registry.policy import Business  # noqa: E402
from weir.settings import Settings  # noqa: E402

REPORT = "report.html"


@dataclass(frozen=True)
class Figure:
    """One picture and the numbers it shows."""

    name: str  # its file name, without .png
    title: str
    caption: str
    png: bytes
    rows: list[dict[str, Any]]  # the numbers plotted, one row per point


def demo_figures(summary: dict[str, Any], business: Business | None) -> list[Figure]:
    """The figures of a demo run, from its summary."""
    figures = [_quality_over_time(summary, "accuracy"), _quality_over_time(summary, "log_loss"),
               _served_share(summary), _data_quality(summary), _feature_drift(summary), _alert_timeline(summary),
               _serving(summary)]
    if business is not None:
        figures.append(_business(summary, business))
    return figures


def experiment_figures(name: str, rank_by: str, runs: list[dict[str, Any]]) -> list[Figure]:
    """An experiment's runs side by side: ``rank_by`` over the labels learned, and the final metrics. Each run:
    ``name``, ``run_id``, ``metrics`` (final), ``history`` ([labels, value] of ``rank_by``), ``params``."""
    canvas, axes = _canvas()
    rows = []
    for run in runs:
        steps = [s for s, _ in run["history"]]
        values = [v for _, v in run["history"]]
        axes.plot(steps, values, label=run["name"])
        rows += [{"run": run["name"], "labels": s, rank_by: v} for s, v in run["history"]]
    axes.set_xlabel("labels learned")
    axes.set_ylabel(rank_by)
    axes.legend(fontsize=7)
    over_time = Figure("runs", f"{rank_by} over the labels learned, run by run",
                       f"Each run of experiment {name}, replayed over the same data version.", _png(canvas), rows)
    canvas, axes = _canvas()
    names = [run["name"] for run in runs]
    finals = [run["metrics"].get(rank_by, float("nan")) for run in runs]
    axes.barh(names, finals)
    axes.set_xlabel(f"final {rank_by}")
    axes.invert_yaxis()
    final = Figure("ranking", f"Final {rank_by}, best first", "The ranking `weir experiment compare` prints.",
                   _png(canvas), [{"run": n, rank_by: v, "run_id": r["run_id"], **r["params"]}
                                  for n, v, r in zip(names, finals, runs, strict=True)])
    return [over_time, final]


def write_report(figures: list[Figure], folder: Path, title: str, facts: list[tuple[str, str]]) -> Path:
    """The page and its images in ``folder`` (``report.html`` and ``report/<figure>.png``); the page's path."""
    images = folder / "report"
    images.mkdir(parents=True, exist_ok=True)
    sections = []
    for figure in figures:
        (images / f"{figure.name}.png").write_bytes(figure.png)
        sections.append(_section(figure))
    page = PAGE.format(title=html.escape(title), facts="".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts), sections="".join(sections))
    path = folder / REPORT
    path.write_text(page)
    return path


# --- the demo's figures ---------------------------------------------------------------------------------------------


def _quality_over_time(summary: dict[str, Any], metric: str) -> Figure:
    canvas, axes = _canvas()
    rows = []
    versions = sorted({v for stretch in summary["version_timeline"] for v in stretch["versions"]})
    for version in versions:
        points = [((s["from"] + s["to"]) / 2, s["versions"][version][metric]) for s in summary["version_timeline"]
                  if version in s["versions"] and s["versions"][version][metric] is not None]
        axes.plot([x for x, _ in points], [y for _, y in points], marker="o", label=version)
        rows += [{"version": version, "from": s["from"], metric: s["versions"][version][metric]}
                 for s in summary["version_timeline"] if version in s["versions"]]
    if metric == "accuracy":
        served = [((s["from"] + s["to"]) / 2, s["accuracy"]) for s in summary["served_accuracy_timeline"]
                  if s["accuracy"] is not None]
        axes.plot([x for x, _ in served], [y for _, y in served], color="black", linestyle="--", label="served")
        rows += [{"version": "served", "from": s["from"], metric: s["accuracy"]}
                 for s in summary["served_accuracy_timeline"]]
    _mark_drifts_and_decisions(axes, summary)
    axes.set_xlabel(summary.get("axis", "event"))
    axes.set_ylabel(metric.replace("_", " "))
    axes.legend(fontsize=7)
    what = "accuracy" if metric == "accuracy" else "log loss (from each version's score)"
    return Figure(metric, f"{what.capitalize()} per version over the stream",
                  f"Every version scores every event; each point is one stretch of {_stretch(summary)}. "
                  "Dotted lines: drift points; triangles: the policy's decisions.", _png(canvas), rows)


def _served_share(summary: dict[str, Any]) -> Figure:
    canvas, axes = _canvas()
    timeline = summary["served_accuracy_timeline"]
    versions = sorted({v for s in timeline for v in s["by_version"]})
    middles = [(s["from"] + s["to"]) / 2 for s in timeline]
    shares = {v: [s["by_version"].get(v, 0) / s["served"] if s["served"] else 0.0 for s in timeline]
              for v in versions}
    axes.stackplot(middles, *[shares[v] for v in versions], labels=versions, alpha=0.8)
    _mark_drifts_and_decisions(axes, summary)
    axes.set_ylim(0, 1)
    axes.set_xlabel(summary.get("axis", "event"))
    axes.set_ylabel("share of events served")
    axes.legend(fontsize=7, loc="lower left")
    rows = [{"from": s["from"], "version": v, "share": round(shares[v][i], 4)}
            for i, s in enumerate(timeline) for v in versions]
    return Figure("canary", "Who served: the canary share", "The share of each stretch's events each version served: "
                  "a canary's share grows in steps until it is promoted or rolled back.", _png(canvas), rows)


def _data_quality(summary: dict[str, Any]) -> Figure:
    canvas, axes = _canvas()
    dimensions = summary["quality"].get("dimensions", {})
    names = sorted(dimensions)
    rates = [dimensions[n]["rate"] for n in names]
    axes.bar(names, rates)
    axes.set_ylabel("violation rate")
    rows = [{"dimension": n, "rate": dimensions[n]["rate"], "violations": dimensions[n]["violations"]}
            for n in names]
    rows += [{"field": f, "missing_rate": v["missing_rate"], "out_of_range_rate": v["out_of_range_rate"]}
             for f, v in sorted(summary["quality"].get("fields", {}).items())]
    return Figure("quality", "Data quality per dimension", f"Of {summary['quality'].get('records', 0)} records "
                  "checked at the door; the fields' missing and out-of-range rates are listed below.", _png(canvas),
                  rows)


def _feature_drift(summary: dict[str, Any]) -> Figure:
    canvas, axes = _canvas()
    found: dict[str, dict[str, Any]] = {}
    for alert in summary["alert_list"]:
        if alert["kind"] == "data_drift" and alert["status"] == "FIRING":
            psi = float(alert["evidence"].get("psi", "nan"))
            kept = found.setdefault(alert["subject"], {"feature": alert["subject"], "episodes": 0, "max_psi": 0.0})
            kept["episodes"] += 1
            kept["max_psi"] = max(kept["max_psi"], psi) if psi == psi else kept["max_psi"]
    rows = sorted(found.values(), key=lambda r: (-r["max_psi"], r["feature"]))
    axes.barh([r["feature"] for r in rows], [r["max_psi"] for r in rows])
    axes.invert_yaxis()
    axes.set_xlabel("largest PSI when a drift episode opened")
    return Figure("drift", "Data drift per feature", "Features whose distribution moved, by the largest population "
                  "stability index among their drift alerts, with how many episodes opened.", _png(canvas), rows)


def _alert_timeline(summary: dict[str, Any]) -> Figure:
    canvas, axes = _canvas()
    rows = []
    kinds = sorted({a["kind"] for a in summary["alert_list"]})
    for alert in summary["alert_list"]:
        event = alert.get("event", event_index(alert["evidence"].get("event_id", "")))  # older summaries: from the id
        if event is None or alert["status"] != "FIRING":
            continue
        rows.append({"event": event, "kind": alert["kind"], "subject": alert["subject"]})
    for kind in kinds:
        xs = [r["event"] for r in rows if r["kind"] == kind]
        axes.scatter(xs, [kind] * len(xs), s=14)
    _mark_drifts_and_decisions(axes, summary, decisions=False)
    axes.set_xlabel(summary.get("axis", "event"))
    return Figure("alerts", "Alerts on a timeline", "Every alert that fired, placed at the event it was raised on; "
                  "dotted lines: drift points.", _png(canvas), sorted(rows, key=lambda r: (r["event"], r["kind"])))


def _serving(summary: dict[str, Any]) -> Figure:
    canvas, axes = _canvas()
    timeline = [s for s in summary["serving_timeline"] if s["served"]]
    middles = [(s["from"] + s["to"]) / 2 for s in timeline]
    axes.plot(middles, [s["latency_p50_ms"] for s in timeline], marker="o", label="latency p50 (ms)")
    axes.plot(middles, [s["latency_p99_ms"] for s in timeline], marker="o", label="latency p99 (ms)")
    axes.set_xlabel(summary.get("axis", "event"))
    axes.set_ylabel("scoring latency (ms)")
    twin = axes.twinx()
    twin.plot(middles, [s["throughput_per_s"] for s in timeline], color="grey", linestyle=":",
              label="served events/s")
    twin.set_ylabel("served events/s")
    axes.legend(fontsize=7, loc="upper left")
    twin.legend(fontsize=7, loc="upper right")
    return Figure("serving", "Latency and throughput", "Per stretch: the scoring latency of the served prediction "
                  "(median, 99th percentile) and served events per second.", _png(canvas),
                  [{k: s[k] for k in ("from", "served", "latency_p50_ms", "latency_p99_ms", "throughput_per_s")}
                   for s in timeline])


def _business(summary: dict[str, Any], business: Business) -> Figure:
    """Money per stretch for each version and for no model, on the events each version scored."""
    canvas, axes = _canvas()
    rows = []
    versions = sorted({v for s in summary["version_timeline"] for v in s["versions"]})
    for version in versions:
        points = []
        for s in summary["version_timeline"]:
            counts = s["versions"].get(version)
            if counts is None:
                continue
            confusion = (counts["tp"], counts["fp"], counts["fn"], counts["tn"])
            value, none = business.value(*confusion), business.without_a_model(*confusion)
            points.append(((s["from"] + s["to"]) / 2, (value - none) / counts["n"] * 1000))
            rows.append({"version": version, "from": s["from"], "events": counts["n"], "value": round(value, 2),
                         "no_model": round(none, 2), "gain": round(value - none, 2)})
        axes.plot([x for x, _ in points], [y for _, y in points], marker="o", label=version)
    _mark_drifts_and_decisions(axes, summary)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xlabel(summary.get("axis", "event"))
    axes.set_ylabel(f"gain over no model per 1,000 events {business.currency}".strip())
    axes.legend(fontsize=7)
    totals: dict[str, list[float]] = {}
    for row in rows:
        totals.setdefault(row["version"], [0.0, 0.0])
        totals[row["version"]][0] += row["value"]
        totals[row["version"]][1] += row["no_model"]
    rows += [{"version": v, "total_value": round(t[0], 2), "total_no_model": round(t[1], 2),
              "total_gain": round(t[0] - t[1], 2)} for v, t in sorted(totals.items())]
    rows += _against_the_previous_champion(summary, business)
    return Figure("business", "The business view: money gained", "With the policy's values (true positive "
                  f"{business.true_positive:g}, false positive {business.false_positive:g}, false negative "
                  f"{business.false_negative:g}, true negative {business.true_negative:g} {business.currency}): "
                  "each version's gain over flagging nobody, per 1,000 events, and each promoted version against "
                  "the champion it replaced, on the stretches both scored.", _png(canvas), rows)


def _against_the_previous_champion(summary: dict[str, Any], business: Business) -> list[dict[str, Any]]:
    out = []
    for decision in summary["decisions"]:
        if decision["action"] != "promote":
            continue
        new, old = decision["challenger"], decision["champion"]
        both = [s["versions"] for s in summary["version_timeline"] if new in s["versions"] and old in s["versions"]]
        new_value = sum(business.value(*(v[new][k] for k in ("tp", "fp", "fn", "tn"))) for v in both)
        old_value = sum(business.value(*(v[old][k] for k in ("tp", "fp", "fn", "tn"))) for v in both)
        out.append({"promoted": new, "replaced": old, "stretches_both_scored": len(both),
                    "gain_over_previous_champion": round(new_value - old_value, 2)})
    return out


# --- drawing and the page -------------------------------------------------------------------------------------------


def _canvas() -> tuple[Canvas, Axes]:
    canvas, axes = plt.subplots(figsize=(8, 3.6))
    return canvas, axes


def _png(canvas: Canvas) -> bytes:
    canvas.tight_layout()
    buffer = io.BytesIO()
    canvas.savefig(buffer, format="png", dpi=100)
    plt.close(canvas)
    return buffer.getvalue()


def _mark_drifts_and_decisions(axes: Axes, summary: dict[str, Any], decisions: bool = True) -> None:
    for point in summary.get("drift_schedule", []):
        axes.axvline(point["at"], color="grey", linestyle=":", linewidth=1)
        axes.annotate(point["kind"], (point["at"], 1), xycoords=("data", "axes fraction"), fontsize=7,
                      rotation=90, va="top", ha="right", color="grey")
    if decisions:
        for decision in summary.get("decisions", []):
            if decision["event"] is not None:
                axes.plot(decision["event"], 0, marker="^", color="crimson", transform=axes.get_xaxis_transform(),
                          clip_on=False)
                axes.annotate(decision["action"], (decision["event"], 0.03), xycoords=("data", "axes fraction"),
                              fontsize=6, rotation=90, color="crimson")


def _stretch(summary: dict[str, Any]) -> str:
    first = summary["served_accuracy_timeline"][0] if summary["served_accuracy_timeline"] else None
    return f"{first['to'] - first['from'] + 1:,} {summary.get('unit', 'events')}" if first else "?"


def _section(figure: Figure) -> str:
    image = base64.b64encode(figure.png).decode()
    columns = list(dict.fromkeys(k for row in figure.rows for k in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
                   for row in figure.rows)
    return (f'<section id="{figure.name}"><h2>{html.escape(figure.title)}</h2>'
            f'<img src="data:image/png;base64,{image}" alt="{html.escape(figure.title)}">'
            f"<p>{html.escape(figure.caption)}</p>"
            f'<details><summary>The numbers ({len(figure.rows)} rows)</summary>'
            f'<table class="figure-data" data-figure="{figure.name}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></details></section>")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
img {{ max-width: 100%; }} table {{ border-collapse: collapse; font-size: 0.8rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.15rem 0.4rem; text-align: left; }}
section {{ margin: 2rem 0; }} .facts th {{ background: #f4f4f4; }}
</style></head>
<body><h1>{title}</h1><table class="facts">{facts}</table>{sections}</body></html>
"""


def report_demo_run(run_dir: Path) -> Path:
    """The page of a demo run folder (its summary.json, and its policy.yaml's business values if any)."""
    from weir.registry.policy import load_policy

    summary = json.loads((run_dir / "summary.json").read_text())
    policy = run_dir / "policy.yaml"
    business = load_policy(policy).business if policy.exists() else None
    recovery = summary.get("recovery", [])
    facts = [("run", summary["run_id"]), ("events", f"{summary['events_produced']:,} produced, "
                                                    f"{summary['served']:,} served, "
                                                    f"{summary['events_dead_lettered']:,} dead-lettered"),
             ("served accuracy", "-" if summary["accuracy"] is None else f"{summary['accuracy']:.4f}"),
             ("reconciled", "yes" if summary["reconciled"] else "NO"), ("seconds", f"{summary['seconds']}"),
             ("decisions", ", ".join(f"{d['action']} {d['challenger']} @{d['event']}".replace(" - ", " ")
                                     for d in summary.get("decisions", [])) or "none")]
    facts += [(f"recovery after {r['promoted']}", f"served accuracy {r['after_promotion']['accuracy']} after the "
                                                  f"promotion, {r['before_drift']['accuracy']} before the drift "
                                                  f"(gap {r['gap']})") for r in recovery]
    return write_report(demo_figures(summary, business), run_dir, f"Weir demo run {summary['run_id']}", facts)


def report_experiment(name: str, rank_by: str, runs_dir: Path) -> Path:
    """The page of an experiment's finished runs, read back from MLflow, under <runs-dir>/reports/<name>."""
    from apps.tracking import Tracker

    tracker = Tracker(name, runs_dir)
    found = tracker.runs(rank_by)
    if not found:
        raise FileNotFoundError(f"experiment {name} has no finished runs at {tracker.uri}")
    runs = [{"name": r.info.run_name, "run_id": r.info.run_id, "metrics": dict(r.data.metrics),
             "params": dict(r.data.params),
             "history": [[m.step, m.value] for m in tracker.client.get_metric_history(r.info.run_id, rank_by)]}
            for r in found]
    versions = sorted({r.data.tags.get("weir.data_version", "-") for r in found})
    facts = [("experiment", name), ("tracking", tracker.uri), ("runs", str(len(runs))),
             ("data version", ", ".join(versions)), ("ranked by", rank_by)]
    return write_report(experiment_figures(name, rank_by, runs), runs_dir / "reports" / name,
                        f"Weir experiment {name}", facts)


def report_topic_range(settings: Settings, catalog: SchemaCatalog, *, since_ms: int, until_ms: int, out: Path,
                       business: Business | None, progress: bool) -> Path:
    """The page of what the topics hold between two event times (predictions, labels, alerts, decisions)."""
    from apps.range_summary import summarize_range

    summary = summarize_range(settings, catalog, since_ms=since_ms, until_ms=until_ms, progress=progress)
    facts = [("range", summary["run_id"]), ("events", f"{summary['events']:,} scored, {summary['served']:,} served, "
                                                      f"{summary['labels']:,} labelled"),
             ("decisions", ", ".join(f"{d['action']} {d['challenger']}" for d in summary["decisions"]) or "none")]
    (out / "summary.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return write_report(demo_figures(summary, business), out, f"Weir: {summary['run_id']}", facts)
