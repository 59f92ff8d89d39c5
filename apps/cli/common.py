"""What several ``weir`` commands share: the settings, signals, and options defined once."""

from __future__ import annotations

import functools
import json
import math
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from confluent_kafka import KafkaError, KafkaException

from producers.files import FileColumns
from producers.sources import SourceSpec
from weir.contract.serde import SchemaCatalog, open_catalog
from weir.errors import WeirError
from weir.kafka.logs import flush_librdkafka_log
from weir.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Session:
    """The settings of this invocation (environment, then the global options) and the schema catalog."""

    settings: Settings
    debug: bool = False  # --debug: errors show their traceback

    @cached_property
    def catalog(self) -> SchemaCatalog:
        return open_catalog(self.settings)


pass_session = click.make_pass_decorator(Session)


class WeirGroup(click.Group):
    """Turns the errors a user can act on into one clear line instead of a traceback: Weir's own, Kafka's (an
    unreachable broker, refused credentials, a missing ACL), and the file system's (a missing file). ``--debug``
    shows the traceback instead."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (WeirError, KafkaException, OSError) as exc:
            session = ctx.find_object(Session)
            if session is not None and session.debug:
                raise
            flush_librdkafka_log()  # librdkafka's repeat counts go before the line that says why, not after it
            _fail(_one_line(exc, ctx), exc.exit_code if isinstance(exc, WeirError) else 1)


def _one_line(exc: Exception, ctx: click.Context) -> str:
    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        return f"Kafka: {error.str() if error is not None else exc} (bootstrap {_bootstrap(ctx)})"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    return str(exc)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.secho(f"weir: {message}", fg="red", err=True)
    sys.exit(code)


def _bootstrap(ctx: click.Context) -> str:
    session = ctx.find_object(Session)
    return session.settings.bootstrap if session is not None else "?"


class FiniteFloat(click.FloatRange):
    """A float in a range that is also finite: click's range alone lets nan through (nan compares false)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


POSITIVE = FiniteFloat(min=0, min_open=True)  # rates, durations
SHARE = FiniteFloat(min=0, max=1)  # shares of labels lost or duplicated
PERCENT = FiniteFloat(min=0, max=100)
COUNT = click.IntRange(min=1)  # events, limits
PORT = click.IntRange(min=0, max=65_535)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so loops can finish what they accepted and report."""
    stop = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _model(ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    return value or ctx.find_object(Session).settings.model_name  # type: ignore[union-attr]


def model_option(f: F) -> F:
    return click.option("--model", "model", callback=_model,
                        help="Model name (env WEIR_MODEL_NAME, default 'default').")(f)


def note_option(f: F) -> F:
    return click.option("--note", help="Why: kept with the record, shown by `weir models history`.")(f)


def _params(_ctx: click.Context, _param: click.Parameter, pairs: tuple[str, ...]) -> dict[str, Any]:
    """KEY=VALUE pairs, VALUE read as JSON when it parses (numbers, booleans), else as a string."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def params_option(f: F) -> F:
    return click.option("--param", "params", multiple=True, metavar="KEY=VALUE", callback=_params,
                        help="Factory parameter, VALUE as JSON when it parses (repeatable).")(f)


class Instant(click.ParamType):
    """Epoch milliseconds, from epoch ms or an ISO 8601 time (UTC when it names no zone)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        if re.fullmatch(r"-?[0-9]+", value):  # all digits: epoch milliseconds (write dates with dashes)
            return int(value)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is neither epoch milliseconds nor an ISO 8601 time", param, ctx)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)


class Duration(click.ParamType):
    """Milliseconds, from a number with its unit: 250ms, 50s, 2m, 1h, 1d (no bare numbers: say the unit)."""

    name = "duration"
    UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        found = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)", str(value).strip())
        if found is None:
            self.fail(f"{value!r} is not a duration with a unit: 250ms, 50s, 2m, 1h or 1d", param, ctx)
        return round(float(found.group(1)) * self.UNITS_MS[found.group(2)])


def given(name: str) -> bool:
    """Whether the user set option ``name`` (on the command line or in the environment), not left its default."""
    source = click.get_current_context().get_parameter_source(name)
    return source not in (None, click.core.ParameterSource.DEFAULT)


FILE_SUFFIXES = (".csv", ".parquet", ".pq")
SOURCE_FIELDS = ("source", "count", "seed", "drift", "entity_column", "label_column", "time_column", "id_column",
                 "delay_column", "columns")


def source_options(*, default_events: int | None, default_drift: str, topics: bool = False) -> Callable[[F], F]:
    """The options that choose a source of events, passed to the command as one ``source: SourceSpec``.

    ``topics``: the command can also read what the features (and feedback)
    topics hold between ``--since`` and ``--until`` (``--source topics``).
    """
    named = "churn, simple, sea, agrawal, hyperplane, or a .csv/.parquet file"
    options = [
        click.option("--source", default="churn", show_default=True,
                     help=named + (", or `topics`: what the features and feedback topics hold between --since and "
                                   "--until" if topics else ".")),
        click.option("--events", "count", type=COUNT, default=default_events, show_default=default_events is not None,
                     help="Events of a named source (default: 10,000); a file: at most this many rows (default: all)."),
        click.option("--seed", default=42, show_default=True, help="Seed of a generated source."),
        click.option("--drift", default=default_drift, show_default=True,
                     help="Drift schedule kind@where[:width],... (abrupt, gradual, recurring, concept); where and "
                          "width below 1 are fractions of --events; 'none' for a stationary stream."),
        click.option("--entity-column", default="entity_id", show_default=True, help="File: the entity column."),
        click.option("--label-column", default="label", show_default=True, help="File: the label column."),
        click.option("--time-column", help="File: event-time column (epoch ms or a date); without one, rows keep "
                                           "their order and are stamped as they are read."),
        click.option("--id-column", help="File: event-id column; default: <file>-<row>."),
        click.option("--delay-column", help="File: per-row label delay in seconds (with --feedback-delay column)."),
        click.option("--column", "columns", multiple=True, metavar="COLUMN=ATTRIBUTE",
                     help="File: take only these columns, renamed (repeatable); default: every other column."),
    ]
    if topics:
        options += [
            click.option("--since", type=Instant(), help="Topics: first event time taken (ISO 8601 or epoch ms)."),
            click.option("--until", type=Instant(), help="Topics: event time where taking stops, exclusive."),
        ]

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def with_source(*args: Any, **kwargs: Any) -> Any:
            chosen = {name: kwargs.pop(name) for name in SOURCE_FIELDS}
            kwargs["source"] = _spec(**chosen)
            return command(*args, **kwargs)

        for option in reversed(options):
            with_source = option(with_source)
        return with_source  # type: ignore[return-value]

    return decorate


def _spec(source: str, count: int | None, seed: int, drift: str, entity_column: str, label_column: str,
          time_column: str | None, id_column: str | None, delay_column: str | None,
          columns: tuple[str, ...]) -> SourceSpec:
    if Path(source).suffix not in FILE_SUFFIXES:
        return SourceSpec(source, count, seed=seed, drift=drift)
    mapping = {column: attribute or column for column, _, attribute in (c.partition("=") for c in columns)}
    return SourceSpec(source, count, seed=seed, drift=drift,
                      columns=FileColumns(entity_column, label_column, time_column, id_column, delay_column, mapping))


