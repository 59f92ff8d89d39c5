"""Stored drift references: each feature's bins and counts, in a JSON file a person can read and ship.

A data scientist builds one from the data a model was trained on (`weir
monitor profile`) and points the monitor at it (``WEIR_DRIFT_PROFILE``): drift
is then measured against that data from the first event on. Without one, the
monitor takes its first ``WEIR_DRIFT_REFERENCE_EVENTS`` values as the
reference. Either way the monitor keeps its current reference (after every
re-baseline too) in its state directory, so a restart in the middle of a drift
does not make the drifted data the new normal. The kept file names the
profile it descends from; configuring a different profile starts from that
one instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weir.clock import now_ms
from weir.errors import ConfigError
from weir.stats.distribution import FeatureDistribution

PROFILE_FORMAT = 1


FIRST_EVENTS = "first-events"  # the origin of a reference the monitor took from its own first events


FeatureProfiles = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Reference:
    """The features' profiles the monitor starts from, and what they descend from."""

    features: FeatureProfiles
    origin: str


def build_profile(rows: Iterable[dict[str, Any]]) -> FeatureProfiles:
    """Every feature's reference over all ``rows`` (a feature missing from a row counts as missing)."""
    columns: dict[str, list[Any]] = {}
    n = 0
    for row in rows:
        for name in row.keys() - columns.keys():
            columns[name] = [None] * n
        for name, column in columns.items():
            column.append(row.get(name))
        n += 1
    profiles: FeatureProfiles = {}
    for name, values in sorted(columns.items()):
        distribution = FeatureDistribution(name, reference_size=len(values), window=1)
        distribution.freeze(values)
        profiles[name] = distribution.profile() or {}
    return profiles


def save_profile(path: Path, features: FeatureProfiles, *, origin: str, source: str) -> None:
    """Write atomically and durably (temporary file, fsync, rename): a reader, or a restart after a crash, sees
    the old profile or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"format": PROFILE_FORMAT, "created_at": now_ms(), "source": source, "origin": origin,
                "features": features}
    temporary = path.with_suffix(path.suffix + ".tmp")
    with open(temporary, "w") as f:
        f.write(json.dumps(document, indent=1, sort_keys=True))
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)  # the rename itself survives a power loss
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_profile(path: Path) -> tuple[FeatureProfiles, str]:
    """The features' profiles and the origin written with them; ``ConfigError`` naming the file otherwise."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the drift profile {path}: {e}") from e
    if not isinstance(document, dict) or document.get("format") != PROFILE_FORMAT:
        raise ConfigError(f"{path} is not a drift profile of format {PROFILE_FORMAT} (build one with "
                          "`weir monitor profile`)")
    return document["features"], str(document.get("origin", ""))


def fingerprint(path: Path) -> str:
    """What a kept reference records as its origin when it descends from the profile at ``path``."""
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        raise ConfigError(f"cannot read the drift profile {path}: {e}") from e


def starting_reference(configured: Path | None, kept: Path | None) -> Reference | None:
    """The reference a monitor starts from: the kept one if it descends from what is configured now, otherwise
    the configured profile, otherwise none (the first events will be the reference)."""
    origin = fingerprint(configured) if configured is not None else FIRST_EVENTS
    if kept is not None and kept.exists():
        features, kept_origin = load_profile(kept)
        if kept_origin == origin:
            return Reference(features, origin)
    if configured is not None:
        return Reference(load_profile(configured)[0], origin)
    return None
