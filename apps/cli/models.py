"""``weir models`` and ``weir deploy``: the registry's versions, and the routing of live traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from apps.cli.common import PERCENT, Session, model_option, note_option, params_option, pass_session
from weir.contract.records import ModelRecord
from weir.registry import decisions
from weir.registry.records import STAGE_COUNTERS
from weir.registry.view import ModelRegistry


@click.group()
def models() -> None:
    """The model registry on the models topic: versions, their status, and every routing decision."""


@models.command("register")
@model_option
@click.option("--factory", help="A river pipeline factory: logistic_regression, hoeffding_tree.")
@params_option
@click.option("--pickle", "pickle_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Upload a pickled river model instead; it needs its FILE.sig from `weir models sign`.")
@click.option("--version", help="Version name; default: the next vN.")
@click.option("--parent", help="The version this one derives from (lineage).")
@click.option("--trained-from", type=int, help="Start of the training data's event time (epoch ms).")
@click.option("--trained-to", type=int, help="End of the training data's event time (epoch ms).")
@note_option
@pass_session
def models_register(session: Session, model: str, factory: str | None, params: dict[str, Any],
                    pickle_path: Path | None, version: str | None, parent: str | None, trained_from: int | None,
                    trained_to: int | None, note: str | None) -> None:
    """Register a new version. It serves nothing until a `weir deploy` routes traffic to it."""
    window = (trained_from, trained_to) if trained_from is not None and trained_to is not None else None
    record = decisions.register(session.settings, session.catalog, model,
                                factory=factory, params=params, pickle_path=pickle_path, version=version,
                                parent=parent, training_window=window, note=note)
    spec = record["spec"]
    click.echo(f"registered {record['model_name']} {record['version']} ({spec['factory'] if spec else '?'})")


@models.command("sign")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_session
def models_sign(session: Session, model_file: Path) -> None:
    """Sign a pickled model file with the deployment's model key (WEIR_MODEL_KEY or WEIR_MODEL_KEY_FILE).

    Run it where the model was made; `weir models register --pickle FILE`
    refuses a file without a matching FILE.sig beside it, so a file swapped on
    its way is never loaded.
    """
    click.echo(f"wrote {decisions.sign_model_file(session.settings, model_file)}")


def _registry(session: Session, model: str) -> ModelRegistry:
    return decisions.current(session.settings, session.catalog, model)


@models.command("list")
@model_option
@pass_session
def models_list(session: Session, model: str) -> None:
    """Every version with its status (champion, challenger, retired, registered) and the routing now."""
    registry = _registry(session, model)
    if not registry.versions:
        click.echo(f"no versions of {registry.model_name} registered")
        return
    for v in sorted(registry.versions.values(), key=lambda v: v.created_at):
        lineage = f" from {v.parent_version}" if v.parent_version else ""
        click.echo(f"{v.version:8} {registry.status(v.version):11} {v.factory}{lineage}")
    if registry.routing is not None:
        click.echo(f"routing: {registry.routing.describe()}")


@models.command("show")
@model_option
@click.argument("version")
@pass_session
def models_show(session: Session, model: str, version: str) -> None:
    """One version: spec, lineage, status, and its latest learned metrics."""
    registry = _registry(session, model)
    v = registry.versions.get(version)
    if v is None:
        raise click.ClickException(f"{registry.model_name} has no version {version}")
    click.echo(f"{registry.model_name} {version}: {registry.status(version)}")
    click.echo(f"  factory {v.factory} {dict(v.params) or ''}".rstrip())
    click.echo(f"  parent {v.parent_version or '-'}; training window {v.training_window or '-'}; note {v.note or '-'}")
    latest = registry.metrics.get(version)
    if latest is None:
        click.echo("  no metrics yet: this version has learned no label")
        return
    own = {k: v for k, v in latest["counters"].items() if k not in STAGE_COUNTERS}
    served = {k.removeprefix("served_"): v for k, v in latest["metrics"].items() if k.startswith("served_")}
    scored = {k: v for k, v in latest["metrics"].items() if not k.startswith("served_")}
    click.echo(f"  labels learned {own.get('learned', 0)}; its predictions scored: {_figures(scored)}")
    click.echo(f"  events it served ({own.get('served', 0)} labelled): {_figures(served) if served else 'none'}")
    stage = {k: latest["counters"][k] for k in STAGE_COUNTERS if k in latest["counters"]}
    click.echo(f"  the learner, all versions: {', '.join(f'{k} {v}' for k, v in stage.items())}")


def _figures(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())) or "-"


@models.command("history")
@model_option
@pass_session
def models_history(session: Session, model: str) -> None:
    """Every registration and routing decision, oldest first: who served, from when, and why."""
    for entry in _registry(session, model).history():
        click.echo(entry.describe())


@click.group()
def deploy() -> None:
    """Route live traffic: basic, shadow, canary, promote, rollback. Takes effect without restarts."""


def _routed(record: ModelRecord) -> None:
    view = ModelRegistry(record["model_name"])
    view.apply(record)
    click.echo(f"routing of {record['model_name']}: {view.routing.describe() if view.routing else '-'}")


@deploy.command("basic")
@model_option
@click.argument("version")
@note_option
@pass_session
def deploy_basic(session: Session, model: str, version: str, note: str | None) -> None:
    """VERSION becomes the champion and serves every event; nothing else scores."""
    _routed(decisions.route(session.settings, session.catalog, model, "basic",
                            champion=version, note=note))


@deploy.command("shadow")
@model_option
@click.argument("versions", nargs=-1, required=True)
@note_option
@pass_session
def deploy_shadow(session: Session, model: str, versions: tuple[str, ...], note: str | None) -> None:
    """VERSIONS score every event beside the champion and are never served."""
    _routed(decisions.route(session.settings, session.catalog, model, "shadow",
                            challengers=list(versions), note=note))


@deploy.command("canary")
@model_option
@click.argument("version")
@click.option("--percent", type=PERCENT, required=True, help="Share of entities the canary serves (0-100).")
@note_option
@pass_session
def deploy_canary(session: Session, model: str, version: str, percent: float, note: str | None) -> None:
    """VERSION serves PERCENT of the entities (sticky by entity), the champion the rest; both score every event."""
    _routed(decisions.route(session.settings, session.catalog, model, "canary",
                            challengers=[version], percent=percent, note=note))


@deploy.command("promote")
@model_option
@click.argument("version", required=False)
@note_option
@pass_session
def deploy_promote(session: Session, model: str, version: str | None, note: str | None) -> None:
    """Make a challenger (default: the canary, or the only challenger) the champion, in basic routing."""
    _routed(decisions.promote(session.settings, session.catalog, model,
                              version, note))


@deploy.command("rollback")
@model_option
@note_option
@pass_session
def deploy_rollback(session: Session, model: str, note: str | None) -> None:
    """Stop a running shadow or canary; after a promotion, give the previous champion back its place."""
    _routed(decisions.rollback(session.settings, session.catalog, model, note))
