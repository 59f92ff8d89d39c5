"""``weir kafka``: the local single-node broker Weir provisions from Maven Central."""

from __future__ import annotations

import subprocess
import sys

import click

from apps.cli.common import Session, pass_session, stop_on_signals
from weir.kafka import local


@click.group()
def kafka() -> None:
    """Run a local single-node Apache Kafka (KRaft) from Maven Central.

    The broker's jars are resolved by Maven from kafka/pom.xml into WEIR_HOME
    (default ~/.cache/weir), its data and log live there too. With
    WEIR_KAFKA_BOOTSTRAP set these commands leave that cluster alone.
    """


@kafka.command("up")
@pass_session
def kafka_up(session: Session) -> None:
    """Provision (first time only), format and start the broker; wait until it answers."""
    settings = session.settings
    if not settings.uses_local_broker:
        answering = local.status(settings).running
        click.echo(f"using the configured cluster {settings.bootstrap} "
                   f"({'answering' if answering else 'NOT answering'}); nothing started")
        return
    click.echo("starting the local Kafka broker (the first run downloads it from Maven Central)...")
    state = local.up(settings)
    verb = "started" if state.started_here else "already running"
    click.echo(f"Kafka {verb} at {state.bootstrap} (pid {state.pid}); log: {state.log}")


@kafka.command("down")
@pass_session
def kafka_down(session: Session) -> None:
    """Stop the local broker (SIGTERM, then SIGKILL after 30 s). Its data is kept."""
    settings = session.settings
    if not settings.uses_local_broker:
        click.echo(f"the configured cluster {settings.bootstrap} is not Weir's to stop; nothing done")
        return
    click.echo("stopped the local broker" if local.down(settings) else "no local broker was running")


@kafka.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_session
def kafka_run(session: Session, command: tuple[str, ...]) -> None:
    """Run COMMAND with the local broker up; stop it afterwards only if this started it.

    A broker that was already running (yours) is left running; one started
    here is stopped when COMMAND ends, fails, or is interrupted. The exit code
    is COMMAND's. Example: `weir kafka run -- pytest` (what `make test` does).
    """
    state = local.up(session.settings)
    click.echo(f"weir kafka run: broker {'started' if state.started_here else 'already running'} at "
               f"{state.bootstrap}", err=True)
    stop = stop_on_signals()
    child = subprocess.Popen(command)
    try:
        while child.poll() is None:
            if stop.wait(0.2):
                child.terminate()
                child.wait()
    finally:
        if state.started_here:
            local.down(session.settings)
            click.echo("weir kafka run: stopped the broker it started", err=True)
    sys.exit(child.returncode)


@kafka.command("status")
@pass_session
def kafka_status(session: Session) -> None:
    """Say whether the broker answers, where, and where its log is. Exit code 1 when it does not."""
    state = local.status(session.settings)
    where = f"{state.bootstrap}" + (f" (pid {state.pid}; log: {state.log})" if state.pid else "")
    click.echo(f"Kafka {'answering' if state.running else 'not answering'} at {where}")
    if not state.running:
        sys.exit(1)
