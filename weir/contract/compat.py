"""Schema evolution rule: BACKWARD_TRANSITIVE.

Every schema in ``schemas/`` must read records written with every earlier
version kept in ``schemas/history/<name>/v<N>.avsc``, and the newest history
entry must equal the current schema (so each change leaves its trail). The
check itself is Apache Avro's own reader/writer compatibility checker.
"""

from __future__ import annotations

import json

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from weir.contract.serde import SchemaCatalog


def incompatibilities(reader_text: str, writer_text: str) -> list[str]:
    """Why a reader schema cannot read a writer's records; empty when it can."""
    reader, writer = avro.schema.parse(reader_text), avro.schema.parse(writer_text)
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    found = [f"{m} at {loc}" for m, loc in zip(result.messages, result.locations, strict=False)]
    return found or [str(result.incompatibilities)]


def check_catalog(catalog: SchemaCatalog) -> dict[str, list[str]]:
    """Problems per schema name: missing history, a stale newest version, or a broken reader."""
    problems: dict[str, list[str]] = {}
    for name in catalog.names:
        current = catalog.current(name)
        history = catalog.history(name)
        found: list[str] = []
        if not history:
            found.append(f"no history: copy schemas/{name}.avsc to schemas/history/{name}/v1.avsc")
        elif json.loads(history[-1].text) != json.loads(current.text):
            found.append(
                f"schemas/{name}.avsc differs from its newest history entry v{history[-1].version}: "
                f"add it as schemas/history/{name}/v{history[-1].version + 1}.avsc"
            )
        for old in history:
            found += [f"cannot read v{old.version}: {p}" for p in incompatibilities(current.text, old.text)]
        if found:
            problems[name] = found
    return problems
