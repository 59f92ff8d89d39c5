"""Validation rules, declared in ``schemas/raw_event.rules.yaml``, each tied to a data-quality dimension.

The rules file lives next to the schema it constrains. It declares per source
(the event's ``source`` field) the fields with their type, range, allowed
categories and whether they are required; cross-field checks as small
expressions; and per-entity history rules (non-decreasing, immutable). Global
limits cover record size and event-time lag and skew. Loading compiles
everything once; checking a record is then plain Python.

A source the file does not declare has no rules: its events are refused
(``unknown-source``) rather than passed on unchecked, unless the file names a
``default_source`` whose rules every undeclared source then gets.
"""

from __future__ import annotations

import ast
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from weir.errors import ConfigError

Dimension = Literal["accuracy", "completeness", "consistency", "timeliness"]


DIMENSIONS: tuple[Dimension, ...] = ("accuracy", "completeness", "consistency", "timeliness")


@dataclass(frozen=True)
class Violation:
    """One broken rule: a stable reason code, the rule's name, its dimension, and what was seen."""

    reason: str
    rule: str
    dimension: Dimension
    message: str
    field: str | None = None


_TYPES: dict[str, tuple[type, ...]] = {
    "number": (int, float),
    "integer": (int,),
    "string": (str,),
    "boolean": (bool,),
}


@dataclass(frozen=True)
class FieldRule:
    name: str
    type: str | None = None
    required: bool = False
    min: float | None = None
    max: float | None = None
    categories: frozenset[str] | None = None

    def check(self, value: Any) -> Violation | None:
        """The first rule ``value`` breaks (a missing optional field breaks none)."""
        if value is None:
            if self.required:
                return Violation("missing-field", f"required:{self.name}", "completeness",
                                 f"required field {self.name} is missing", self.name)
            return None
        if self.type is not None and not _is_type(value, self.type):
            return Violation("wrong-type", f"type:{self.name}", "accuracy",
                             f"{self.name} is {type(value).__name__}, expected {self.type}", self.name)
        if self.out_of_range(value):
            return Violation("out-of-range", f"range:{self.name}", "accuracy",
                             f"{self.name}={value} outside [{self.min}, {self.max}]", self.name)
        if self.categories is not None and value not in self.categories:
            return Violation("unknown-category", f"categories:{self.name}", "consistency",
                             f"{self.name}={value!r} is not one of {sorted(self.categories)}", self.name)
        return None

    def out_of_range(self, value: Any) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            return False
        return (self.min is not None and value < self.min) or (self.max is not None and value > self.max)


def _is_type(value: Any, expected: str) -> bool:
    if isinstance(value, bool):
        return expected == "boolean"
    return isinstance(value, _TYPES[expected])


_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.BinOp, ast.Add,
    ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
    ast.Is, ast.IsNot, ast.Name, ast.Load, ast.Constant,
)


@dataclass(frozen=True)
class CrossFieldRule:
    """A boolean expression over fields, e.g. ``total_charges <= monthly_charges * (tenure_months + 1)``."""

    name: str
    check_text: str
    fields: frozenset[str]
    code: Any = field(repr=False, compare=False)

    @classmethod
    def compile(cls, name: str, text: str) -> CrossFieldRule:
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as exc:
            raise ConfigError(f"cross-field rule {name}: {exc.msg} in {text!r}") from None
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise ConfigError(f"cross-field rule {name}: {type(node).__name__} is not allowed in {text!r}")
        fields = frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id != "None")
        return cls(name, text, fields, compile(tree, f"<rule {name}>", "eval"))

    def check(self, attributes: Mapping[str, Any]) -> Violation | None:
        values = {f: attributes.get(f) for f in self.fields}
        if any(v is None for v in values.values()):
            return None  # completeness is the required rule's job
        try:
            holds = bool(eval(self.code, {"__builtins__": {}}, values))  # noqa: S307 - AST checked above
        except (TypeError, ZeroDivisionError, ArithmeticError) as exc:
            holds, why = False, f"cannot be evaluated ({exc})"
        else:
            why = "does not hold"
        if holds:
            return None
        shown = ", ".join(f"{k}={values[k]}" for k in sorted(values))
        return Violation("cross-field", f"cross:{self.name}", "consistency",
                         f"{self.check_text} {why} for {shown}")


@dataclass
class EntityHistory:
    """Per-entity rules against the entity's earlier events, in a bounded memory (least recently seen goes)."""

    non_decreasing: tuple[str, ...] = ()
    immutable: tuple[str, ...] = ()
    capacity: int = 200_000
    _last: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict, repr=False)

    def check(self, entity_id: str, attributes: Mapping[str, Any]) -> Violation | None:
        before = self._last.get(entity_id)
        if before is None:
            return None
        for name in self.non_decreasing:
            old, new = before.get(name), attributes.get(name)
            if old is not None and new is not None and new < old:
                return Violation("entity-inconsistent", f"non-decreasing:{name}", "consistency",
                                 f"{name} went from {old} to {new} for {entity_id}", name)
        for name in self.immutable:
            old, new = before.get(name), attributes.get(name)
            if old is not None and new is not None and new != old:
                return Violation("entity-inconsistent", f"immutable:{name}", "consistency",
                                 f"{name} changed from {old!r} to {new!r} for {entity_id}", name)
        return None

    def remember(self, entity_id: str, attributes: Mapping[str, Any]) -> None:
        if not (self.non_decreasing or self.immutable):
            return
        self._last[entity_id] = {k: attributes.get(k) for k in (*self.non_decreasing, *self.immutable)}
        self._last.move_to_end(entity_id)
        if len(self._last) > self.capacity:
            self._last.popitem(last=False)


@dataclass
class SourceRules:
    fields: dict[str, FieldRule] = field(default_factory=dict)
    cross_field: list[CrossFieldRule] = field(default_factory=list)
    entity: EntityHistory = field(default_factory=EntityHistory)


@dataclass
class RuleSet:
    max_record_bytes: int = 65_536
    max_lag_ms: int | None = 24 * 3600 * 1000
    max_future_skew_ms: int = 300_000
    sources: dict[str, SourceRules] = field(default_factory=dict)
    default_source: str | None = None  # a declared source whose rules the undeclared ones get

    def for_source(self, source: str) -> SourceRules | None:
        """The rules of ``source``, else those of the default source; None when the file has neither (the event
        is refused: a source nobody declared must not skip the rules)."""
        rules = self.sources.get(source)
        if rules is None and self.default_source is not None:
            return self.sources[self.default_source]
        return rules

    def unknown_source(self, source: str) -> str:
        """Why ``source`` gets no rules, and the two ways to give it some."""
        declared = ", ".join(sorted(self.sources)) or "none"
        return (f"source {source!r} has no validation rules (the rules file declares {declared}, and no "
                "default_source): declare it under sources, or name a default_source")

    @classmethod
    def load(cls, path: Path) -> RuleSet:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read validation rules {path}: {exc}") from exc
        timeliness = doc.get("timeliness", {})
        lag = timeliness.get("max_lag_s", 86_400)
        rules = cls(
            max_record_bytes=int(doc.get("max_record_bytes", 65_536)),
            max_lag_ms=None if lag is None else int(lag * 1000),
            max_future_skew_ms=int(timeliness.get("max_future_skew_s", 300) * 1000),
        )
        for source, spec in (doc.get("sources") or {}).items():
            rules.sources[source] = _source_rules(source, spec or {})
        default = doc.get("default_source")
        if default is not None and (not isinstance(default, str) or default not in rules.sources):
            raise ConfigError(f"default_source {default!r} in {path} is not a source the file declares; name one "
                              f"of {', '.join(sorted(rules.sources)) or '(none declared)'}, or remove it")
        rules.default_source = default
        return rules


_FIELD_KEYS = {"type", "required", "min", "max", "categories"}


def _source_rules(source: str, spec: Mapping[str, Any]) -> SourceRules:
    fields = {}
    for name, f in (spec.get("fields") or {}).items():
        unknown = set(f) - _FIELD_KEYS
        if unknown or f.get("type") not in (None, *_TYPES):
            raise ConfigError(f"rules for {source}.{name}: unknown keys {sorted(unknown)} or type {f.get('type')!r}")
        categories = frozenset(f["categories"]) if "categories" in f else None
        fields[name] = FieldRule(name, f.get("type"), bool(f.get("required", False)), f.get("min"), f.get("max"),
                                 categories)
    cross = [CrossFieldRule.compile(r["name"], r["check"]) for r in spec.get("cross_field") or []]
    entity = spec.get("entity") or {}
    history = EntityHistory(tuple(entity.get("non_decreasing", ())), tuple(entity.get("immutable", ())))
    return SourceRules(fields, cross, history)
