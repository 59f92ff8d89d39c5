"""``weir policy``: the automation policy of a model, and a person's hand on it (approve, resume)."""

from __future__ import annotations

from pathlib import Path

import click

from apps.cli.common import Session, model_option, pass_session
from weir.errors import ConfigError
from weir.registry import decisions
from weir.registry.policy import load_policy

FILE = click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path),
                    help="The policy file; default: WEIR_POLICY_FILE.")


@click.group()
def policy() -> None:
    """The policy that retrains, promotes and rolls back a model without a person (docs/automation.md)."""


def _path(session: Session, path: Path | None) -> Path:
    chosen = path or session.settings.policy_file
    if chosen is None:
        raise ConfigError("no policy: give --file or set WEIR_POLICY_FILE")
    return chosen


@policy.command("check")
@FILE
@pass_session
def policy_check(session: Session, path: Path | None) -> None:
    """Parse the policy and say what it will do; every problem is named."""
    p = load_policy(_path(session, path))
    steps = "/".join(f"{s:g}" for s in p.promotion.canary_steps)
    click.echo(f"policy v{p.version} of {p.model}, {p.mode}: retrain ({p.retrain.method}, last "
               f"{p.retrain.window_labels} labels) on {', '.join(p.retrain.on_alerts) or 'no alert'}; promote "
               f"through {steps}% at false-promotion rate {p.promotion.false_promotion:g}; roll back at "
               f"{p.rollback.false_rollback:g}")


@policy.command("show")
@FILE
@pass_session
def policy_show(session: Session, path: Path | None) -> None:
    """The policy as YAML, and whether a person's routing has paused it."""
    p = load_policy(_path(session, path))
    click.echo(p.to_yaml().rstrip())
    routing = decisions.current(session.settings, session.catalog, p.model).routing
    if routing is None:
        click.echo(f"# {p.model} has no routing yet")
        return
    paused = routing.actor == "person"
    click.echo(f"# routing: {routing.describe()} (by {routing.actor or 'unknown'})"
               + ("; automation paused until `weir policy resume`" if paused else ""))


@policy.command("resume")
@model_option
@pass_session
def policy_resume(session: Session, model: str) -> None:
    """Hand the model back to its controller after a person's `weir deploy` paused it."""
    decisions.restate(session.settings, session.catalog, model, "resume", "a person resumed automation")
    click.echo(f"automation of {model} resumes from the routing as it is")


@policy.command("approve")
@model_option
@pass_session
def policy_approve(session: Session, model: str) -> None:
    """Carry out what the controller proposed (propose mode): its `decision` alert says what and why."""
    decisions.restate(session.settings, session.catalog, model, "approved", "a person approved the proposal")
    click.echo(f"approved: the controller of {model} carries out its pending proposal")
