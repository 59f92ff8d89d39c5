"""Registry changes as decisions: register a version, route traffic, promote, roll back.

Each operation reads the registry as it is now (the ``models`` topic), checks
that the change makes sense, and appends one record. Serve workers follow the
topic, so a routing change reaches live traffic without a restart; and since
every decision is its own record, ``history`` can always say who served when.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weir.contract.records import ModelRecord
from weir.contract.serde import SchemaCatalog
from weir.errors import ConfigError
from weir.kafka.admin import ensure_reachable
from weir.registry.factories import FACTORIES, refuse_unlearnable
from weir.registry.records import PICKLE_FACTORY, routing_record, version_record
from weir.registry.routing import Routing
from weir.registry.signing import model_signer, signature_path
from weir.registry.store import load_registry, publish_records
from weir.registry.view import ModelRegistry, unpickle_model
from weir.settings import Settings


def current(settings: Settings, catalog: SchemaCatalog, name: str) -> ModelRegistry:
    """The registry as the topic holds it now. A wrong bootstrap fails within ``WEIR_CONNECT_TIMEOUT_S``, saying
    so in one line, rather than after the reader's own metadata wait."""
    ensure_reachable(settings)
    registry = ModelRegistry(name)
    load_registry(settings, catalog, registry)
    return registry


def sign_model_file(settings: Settings, path: Path) -> Path:
    """Write ``<file>.sig`` beside a model file: where it was made, by a holder of the deployment's model key."""
    signature = signature_path(path)
    signature.write_text(model_signer(settings).sign_file(path.read_bytes()) + "\n")
    return signature


def signed_model_file(settings: Settings, path: Path) -> bytes:
    """The bytes of a model file whose ``.sig`` checks with the deployment's key; a file could be swapped on its
    way from where it was trained, and unpickling a swapped one would run its code here."""
    data = path.read_bytes()
    signature = signature_path(path)
    if not signature.exists():
        raise ConfigError(f"{path} has no signature {signature.name}: sign it where it was made with "
                          f"`weir models sign {path.name}` (same WEIR_MODEL_KEY as this deployment)")
    if not model_signer(settings).file_is_signed(data, signature.read_text()):
        raise ConfigError(f"{signature.name} does not match {path}: the file changed since it was signed, or it "
                          "was signed with another model key")
    return data


def register(settings: Settings, catalog: SchemaCatalog, name: str, *, factory: str | None = None,
             params: dict[str, Any] | None = None, pickle_path: Path | None = None, version: str | None = None,
             parent: str | None = None, training_window: tuple[int, int] | None = None,
             note: str | None = None, actor: str = "person", evidence: dict[str, str] | None = None) -> ModelRecord:
    """Register a new version, built by a named factory or uploaded as a pickled river model."""
    registry = current(settings, catalog, name)
    version = version or registry.next_version()
    if version in registry.versions:
        raise ConfigError(f"{name} {version} is already registered; versions are immutable")
    if parent is not None and parent not in registry.versions:
        raise ConfigError(f"parent version {parent} of {name} is not registered")
    pickled = None
    if pickle_path is not None:
        if factory is not None:
            raise ConfigError("give either a factory or a pickled model, not both")
        pickled = signed_model_file(settings, pickle_path)
        if len(pickled) > settings.max_snapshot_bytes:
            raise ConfigError(f"{pickle_path} is {len(pickled)} bytes; a registry record holds at most "
                              f"{settings.max_snapshot_bytes} (WEIR_MAX_SNAPSHOT_BYTES)")
        unpickle_model(pickled)  # refuse what serve workers could not load
        factory = PICKLE_FACTORY
    elif factory is None:
        raise ConfigError(f"say how to build the model: a factory ({', '.join(sorted(FACTORIES))}) or a pickle")
    elif factory not in FACTORIES:
        raise ConfigError(f"unknown model factory {factory!r}; known: {', '.join(sorted(FACTORIES))}")
    refuse_unlearnable(factory, kind=settings.label_kind)
    record = version_record(name, version, factory, params or {}, parent_version=parent,
                            training_window=training_window, pickled=pickled, note=note, actor=actor,
                            evidence=evidence)
    view = ModelRegistry(name)
    view.apply(record)
    _ = view.versions[version].model  # build it now: bad parameters fail here, not in every serve worker
    publish_records(settings, catalog, [record])
    return record


def route(settings: Settings, catalog: SchemaCatalog, name: str, mode: str, *, champion: str | None = None,
          challengers: list[str] | None = None, percent: float = 0.0, note: str | None = None,
          actor: str = "person", evidence: dict[str, str] | None = None) -> ModelRecord:
    """Set the routing of ``name``: who is champion, who shadows or serves a canary share. A person's routing
    (``actor`` "person") pauses the model's automation until ``weir policy resume``."""
    registry = current(settings, catalog, name)
    champion = champion or (registry.routing.champion if registry.routing else None)
    if champion is None:
        raise ConfigError(f"{name} has no champion yet: name one")
    challengers = list(challengers or [])
    unknown = [v for v in [champion, *challengers] if v not in registry.versions]
    if unknown:
        raise ConfigError(f"{name} has no version {', '.join(unknown)}; registered: "
                          f"{', '.join(sorted(registry.versions)) or 'none'}")
    if champion in challengers:
        raise ConfigError(f"{champion} cannot be both champion and challenger")
    if mode == "basic" and challengers:
        raise ConfigError("basic routing has no challengers: use shadow or canary")
    if mode in ("shadow", "canary") and not challengers:
        raise ConfigError(f"{mode} routing needs at least one challenger")
    if mode == "canary" and not 0 < percent < 100:
        raise ConfigError("a canary takes more than 0% and less than 100% of the entities")
    record = routing_record(name, mode, champion, challengers, percent if mode == "canary" else 0.0, note=note,
                            actor=actor, evidence=evidence)
    publish_records(settings, catalog, [record])
    return record


def promote(settings: Settings, catalog: SchemaCatalog, name: str, version: str | None = None,
            note: str | None = None) -> ModelRecord:
    """Make a challenger (by default the canary, else the only challenger) the champion, in basic routing."""
    routing = _routing(settings, catalog, name)
    if version is None:
        candidates = [routing.canary] if routing.canary else routing.challengers
        if len(candidates) != 1:
            shown = ", ".join(routing.challengers) or "none"
            raise ConfigError(f"say which version to promote: challengers are {shown}")
        version = candidates[0]
    if version not in routing.challengers:
        raise ConfigError(f"{version} is not a challenger of {name} ({routing.describe()})")
    return route(settings, catalog, name, "basic", champion=version, note=note or f"promote {version}")


def rollback(settings: Settings, catalog: SchemaCatalog, name: str, note: str | None = None) -> ModelRecord:
    """Undo: stop a running shadow or canary; after a promotion, give the previous champion back its place."""
    registry = current(settings, catalog, name)
    routing = registry.routing
    if routing is None:
        raise ConfigError(f"{name} has no routing to roll back")
    if routing.challengers:
        return route(settings, catalog, name, "basic", champion=routing.champion,
                     note=note or f"rollback: stop {routing.mode}")
    previous = registry.previous_champion()
    if previous is None:
        raise ConfigError(f"{name} has had no other champion than {routing.champion}: nothing to roll back to")
    return route(settings, catalog, name, "basic", champion=previous,
                 note=note or f"rollback: {previous} replaces {routing.champion}")


def restate(settings: Settings, catalog: SchemaCatalog, name: str, actor: str, note: str) -> ModelRecord:
    """The routing as it is, written again by ``actor``: ``resume`` hands the model back to its controller,
    ``approved`` has the controller carry out what it proposed. Traffic does not move."""
    routing = _routing(settings, catalog, name)
    return route(settings, catalog, name, routing.mode, champion=routing.champion,
                 challengers=list(routing.challengers), percent=routing.percent, note=note,
                 actor=actor)


def _routing(settings: Settings, catalog: SchemaCatalog, name: str) -> Routing:
    routing = current(settings, catalog, name).routing
    if routing is None:
        raise ConfigError(f"{name} has no routing yet: deploy a champion with `weir deploy basic`")
    return routing
