"""``weir topics`` and ``weir schemas``: the topic contract and the evolution of its schemas."""

from __future__ import annotations

import sys

import click

from apps.cli.common import Session, pass_session
from weir.contract.compat import check_catalog
from weir.contract.topics import CONTRACT
from weir.kafka.admin import create_topics


@click.group()
def topics() -> None:
    """The topic contract: events.raw, events.dlq, events.valid, features, predictions, feedback, models, alerts."""


@topics.command("create")
@pass_session
def topics_create(session: Session) -> None:
    """Create every contract topic that is missing; report the ones that exist. Safe to run twice."""
    outcomes = create_topics(session.settings)
    for o in outcomes:
        click.echo(f"{o.action:8} {o.topic}" + (f"  ({o.detail})" if o.detail else ""))
    created = sum(o.action == "created" for o in outcomes)
    click.echo(f"{created} created, {len(outcomes) - created} already there"
               + ("; nothing changed" if created == 0 else ""))
    if any(o.action == "differs" for o in outcomes):
        sys.exit(1)


@topics.command("list")
@pass_session
def topics_list(session: Session) -> None:
    """Show the contract: logical name, physical name, value schema, cleanup."""
    for t in CONTRACT:
        schema = f"schemas/{t.schema}.avsc" if t.schema else "(original bytes)"
        cleanup = "compact" if t.compacted else "delete"
        click.echo(f"{t.name:13} {session.settings.topic(t.name):30} {schema:28} {cleanup:8} {t.doc}")


@click.group()
def schemas() -> None:
    """The Avro schemas of schemas/ and their evolution rule (BACKWARD_TRANSITIVE)."""


@schemas.command("check")
@pass_session
def schemas_check(session: Session) -> None:
    """Fail if any schema cannot read a version kept in schemas/history, or left no history entry."""
    catalog = session.catalog
    problems = check_catalog(catalog)
    for name in catalog.names:
        click.echo(f"{'ok' if name not in problems else 'BROKEN':6} {name} "
                   f"(history: {len(catalog.history(name))} versions)")
        for p in problems.get(name, []):
            click.echo(f"         {p}")
    if problems:
        sys.exit(1)
