"""``weir dlq``: what was dead-lettered and why, and sending it again after a fix."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from apps.cli.common import COUNT, Session, pass_session
from consumers.dlq import inspect, resend, select
from weir.kafka.admin import ensure_reachable


@click.group()
def dlq() -> None:
    """The dead-letter topic: what was rejected, why, and sending it again after a fix."""


@dlq.command("inspect")
@click.option("--examples", default=3, show_default=True, help="Examples shown per reason.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_session
def dlq_inspect(session: Session, examples: int, as_json: bool) -> None:
    """Dead letters grouped by reason (most frequent first), with their stage, rule, dimension and examples."""
    ensure_reachable(session.settings)
    groups = inspect(session.settings, examples=examples)
    if as_json:
        click.echo(json.dumps([asdict(g) for g in groups], indent=2))
        return
    if not groups:
        click.echo("the dead-letter topic is empty")
    for g in groups:
        rules = ", ".join(f"{r} x{n}" for r, n in g.rules.most_common(3))
        click.echo(f"{g.count:8d}  {g.reason}  [{g.dimension or '-'}]  stage {', '.join(g.stages)}  rules {rules}")
        for e in g.examples:
            click.echo(f"            dlq {e['dlq']}  key {e['key']!r}  from {e['from']}  {e['bytes']} B: "
                       f"{e['message']}")


@dlq.command("resend")
@click.option("--reason", "reasons", multiple=True, help="Only dead letters with this reason (repeatable).")
@click.option("--stage", "stages", multiple=True, help="Only dead letters from this stage (repeatable).")
@click.option("--rule", "rules", multiple=True, help="Only dead letters that broke this rule (repeatable).")
@click.option("--limit", type=COUNT, help="Resend at most this many.")
@click.option("--dry-run", is_flag=True, help="Show what would be resent; send nothing.")
@click.option("--log", "log_path", type=click.Path(path_type=Path),
              help="Write one JSON line per resent dead letter: where it was and where it went.")
@pass_session
def dlq_resend(session: Session, reasons: tuple[str, ...], stages: tuple[str, ...], rules: tuple[str, ...],
               limit: int | None, dry_run: bool, log_path: Path | None) -> None:
    """Send chosen dead letters back to the topic they came from, to be checked again after a fix.

    Each goes with its original key and bytes and a weir.resent.from header
    naming the dead letter. Rules that resending itself breaks (event-time
    lag, entity order) are not applied to it; every other rule is. Without a
    filter, every dead letter is resent. Exit code 1 if any send failed.
    """
    ensure_reachable(session.settings)
    report = resend(session.settings, select(reasons, stages, rules), limit=limit, dry_run=dry_run)
    if log_path is not None:
        log_path.write_text("".join(json.dumps(r) + "\n" for r in report.records))
    by_reason = ", ".join(f"{r} x{n}" for r, n in report.by_reason.most_common()) or "none"
    verb = "would resend" if dry_run else "resent"
    click.echo(f"{verb} {report.selected} dead letters ({by_reason}); delivered {report.delivered}, "
               f"failed {report.failed}" + (f"; log: {log_path}" if log_path else ""))
    for error, n in report.errors.items():
        click.echo(f"  failed x{n}: {error}", err=True)
    if report.failed:
        sys.exit(1)
