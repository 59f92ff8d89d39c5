"""Schema evolution: BACKWARD_TRANSITIVE against every version kept in schemas/history."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from weir.contract.compat import check_catalog, incompatibilities
from weir.contract.serde import SchemaCatalog


def test_the_repository_schemas_keep_every_history_version_readable(catalog: SchemaCatalog) -> None:
    assert check_catalog(catalog) == {}


def _copy(catalog: SchemaCatalog, tmp_path: Path) -> Path:
    shutil.copytree(catalog.schemas_dir, tmp_path / "schemas")
    return tmp_path / "schemas"


def _evolve(schemas: Path, name: str, change: Callable[[dict[str, Any]], object]) -> None:
    """Apply ``change`` to the current schema and record it as the next history version."""
    current = json.loads((schemas / f"{name}.avsc").read_text())
    change(current)
    text = json.dumps(current)
    (schemas / f"{name}.avsc").write_text(text)
    history = sorted((schemas / "history" / name).glob("v*.avsc"))
    (schemas / "history" / name / f"v{len(history) + 1}.avsc").write_text(text)


def test_adding_a_field_with_a_default_is_compatible(catalog: SchemaCatalog, tmp_path: Path) -> None:
    schemas = _copy(catalog, tmp_path)
    _evolve(schemas, "feedback", lambda s: s["fields"].append({"name": "x", "type": "long", "default": 0}))
    assert check_catalog(SchemaCatalog(schemas)) == {}


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda s: s["fields"].append({"name": "x", "type": "long"}), "x"),
        (lambda s: s["fields"].__setitem__(3, {"name": "label_time", "type": "string"}), "label_time"),
    ],
    ids=["new-field-without-default", "changed-type"],
)
def test_a_breaking_change_is_reported(catalog: SchemaCatalog, tmp_path: Path,
                                       change: Callable[[dict[str, Any]], object], expected: str) -> None:
    schemas = _copy(catalog, tmp_path)
    _evolve(schemas, "feedback", change)
    problems = check_catalog(SchemaCatalog(schemas))
    assert list(problems) == ["feedback"]
    assert any("cannot read v1" in p for p in problems["feedback"])


def test_breaking_an_old_version_but_not_the_newest_is_still_reported(catalog: SchemaCatalog,
                                                                      tmp_path: Path) -> None:
    """Transitive: v3 must read v1 records too, not only v2's.

    v2 adds a defaulted field; v3 drops that default, so v3 reads v2 data but not v1 data.
    """
    schemas = _copy(catalog, tmp_path)
    _evolve(schemas, "feedback", lambda s: s["fields"].append({"name": "x", "type": "long", "default": 0}))
    _evolve(schemas, "feedback", lambda s: s["fields"][-1].pop("default"))
    problems = check_catalog(SchemaCatalog(schemas))["feedback"]
    assert any(p.startswith("cannot read v1") for p in problems)
    assert not any(p.startswith("cannot read v2") for p in problems)


def test_a_change_without_a_history_entry_is_reported(catalog: SchemaCatalog, tmp_path: Path) -> None:
    schemas = _copy(catalog, tmp_path)
    path = schemas / "alert.avsc"
    current = json.loads(path.read_text())
    current["doc"] = "edited"
    path.write_text(json.dumps(current))
    assert "add it as schemas/history/alert/v2.avsc" in check_catalog(SchemaCatalog(schemas))["alert"][0]


def test_incompatibilities_names_the_problem() -> None:
    reader = '{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}'
    writer = '{"type":"record","name":"R","fields":[{"name":"b","type":"int"}]}'
    assert incompatibilities(reader, writer)
    assert incompatibilities(reader, reader) == []
