"""Dead letters: bad input keeps its original bytes, and the headers say why.

A record on ``events.dlq`` is the rejected record's key and value, untouched,
plus headers that tell on-call what went wrong and where it came from, so it
can be inspected, fixed and resent without guessing.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from weir import __version__

HEADER_PREFIX = "weir."


RESENT_HEADER = "weir.resent.from"  # on a dead letter sent again: "<dlq topic>/<partition>/<offset>"
RESENT_SIGNATURE = "weir.resent.sig"  # HMAC-SHA256 of that and the value, under the deployment's resend key


def resend_signature(key: str, resent_from: bytes, value: bytes | None) -> bytes:
    """What ``weir dlq resend`` signs a record with, and what validate checks before it exempts the record from
    the rules a resent record breaks by nature: any producer can write the header, only the key holder sign it."""
    mac = hmac.new(key.encode(), resent_from + b"\n" + (value or b""), hashlib.sha256)
    return mac.hexdigest().encode()


def is_signed_resend(headers: list[tuple[str, bytes | None]], value: bytes | None, key: str | None) -> bool:
    """True if ``headers`` say the record is a resent dead letter and the signature proves it."""
    found = dict(headers)
    resent_from, signature = found.get(RESENT_HEADER), found.get(RESENT_SIGNATURE)
    if key is None or resent_from is None or signature is None:
        return False
    return hmac.compare_digest(signature, resend_signature(key, resent_from, value))


@dataclass(frozen=True)
class Rejection:
    """Why a record cannot go on: a stable reason code and the details behind it."""

    reason: str
    stage: str
    message: str
    exception: BaseException | None = None
    rule: str | None = None
    dimension: str | None = None
    source: str | None = None  # the event's source, when the record could be decoded


@dataclass(frozen=True)
class Origin:
    """Where a record was read."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


def dead_letter_headers(rejection: Rejection, origin: Origin | None) -> list[tuple[str, bytes]]:
    """Why and where from; ``origin`` None for a record a stage made rather than read."""
    fields: dict[str, str | None] = {
        "reason": rejection.reason,
        "stage": rejection.stage,
        "rule": rejection.rule,
        "dimension": rejection.dimension,
        "source": rejection.source,
        "message": _capped(rejection.message),
        "exception.class": type(rejection.exception).__name__ if rejection.exception else None,
        "exception.message": _capped(str(rejection.exception)) if rejection.exception else None,
        "app.version": __version__,
    }
    if origin is not None:
        fields.update({"original.topic": origin.topic, "original.partition": str(origin.partition),
                       "original.offset": str(origin.offset), "original.timestamp": str(origin.timestamp_ms)})
    return [(HEADER_PREFIX + k, v.encode()) for k, v in fields.items() if v is not None]


MAX_HEADER_TEXT = 2_000  # characters of a message kept in a header: enough to read, never enough to fill a record


def _capped(text: str | None) -> str | None:
    return text if text is None or len(text) <= MAX_HEADER_TEXT else text[:MAX_HEADER_TEXT] + "…"


VALUE_DROPPED = "value.dropped"  # a dead letter too large to carry its value: where to find the original instead


def value_dropped_headers(value: bytes) -> list[tuple[str, bytes]]:
    """Headers of a dead letter that had to leave its value out: its size and digest; ``original.*`` says where
    the value still is (until the input topic's retention removes it)."""
    return [(HEADER_PREFIX + VALUE_DROPPED, b"true"),
            (HEADER_PREFIX + "original.bytes", str(len(value)).encode()),
            (HEADER_PREFIX + "original.sha256", hashlib.sha256(value).hexdigest().encode())]


def read_headers(headers: list[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """The ``weir.*`` headers of a dead letter as a plain dict (prefix removed)."""
    out: dict[str, str] = {}
    for key, value in headers or []:
        if key.startswith(HEADER_PREFIX) and value is not None:
            out[key[len(HEADER_PREFIX):]] = value.decode("utf-8", errors="replace")
    return out


DUPLICATE_EVENT = "duplicate-event"  # the reason of an event id the front served already: not served again
VALIDATE_STAGE = "validate"  # the stage that refuses raw events on the stream
RECEIVED_BY_HTTP = "http"  # ``weir.received.by`` of what the HTTP service refused


def refused_unserved(headers: dict[str, str], raw_topic: str) -> bool:
    """Whether the dead letter with these (``read_headers``) headers is a raw event that was never served: refused
    by validation on the stream or by the HTTP service. An event the serve stage refused has its features written
    (its label can still be learned), and a duplicate's first copy was served."""
    if headers.get("original.topic") != raw_topic or headers.get("reason") == DUPLICATE_EVENT:
        return False
    return headers.get("stage") == VALIDATE_STAGE or headers.get("received.by") == RECEIVED_BY_HTTP
