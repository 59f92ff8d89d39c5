"""Weir's exception tree: every error Weir raises on purpose is a ``WeirError``.

Callers catch the narrowest class they can act on; the CLI turns any
``WeirError`` into a one-line message and a non-zero exit code instead of a
traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class WeirError(Exception):
    """Base class of every error Weir raises on purpose."""

    exit_code = 1  # what the CLI exits with when it ends on this error


class ConfigError(WeirError):
    """A setting or flag has a value Weir cannot work with."""


class UsageError(ConfigError):
    """A command asked for something Weir will not do as given (a receiver open to the network without its token,
    a file with nothing to send): refused before it starts anything, with exit code 2 like a flag value that makes
    no sense."""

    exit_code = 2


class SerdeError(WeirError):
    """A record could not be encoded or decoded; ``reason`` is a stable, short code for the DLQ."""

    reason = "serde"


class WireFormatError(SerdeError):
    """The bytes are not in the Confluent wire format (too short or wrong magic byte)."""

    reason = "bad-wire-format"


class UnknownSchemaError(SerdeError):
    """The schema id in the bytes is in neither the local catalog nor the registry."""

    reason = "unknown-schema-id"


class PayloadDecodeError(SerdeError):
    """The Avro body does not decode with the writer's schema (truncated, garbage, trailing bytes)."""

    reason = "undecodable-payload"


class RecordEncodeError(SerdeError):
    """A record does not fit the schema it is written with."""

    reason = "unencodable-record"


class SchemaCompatibilityError(WeirError):
    """A schema change would break readers of an earlier version."""


class KafkaUnreachable(WeirError):
    """No broker of the configured cluster answered in time."""


class KafkaRefused(WeirError):
    """The cluster answered and refused Weir (credentials, TLS, authorisation): waiting will not help."""


def invalid(origin: str, exc: ValidationError) -> ConfigError:
    """A file's pydantic validation failure as one ConfigError naming every problem by its key path."""
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
    return ConfigError(f"{origin}: {problems}")
