"""Raw events a Weir process served before they reached the front (the HTTP service answers in the request).

Such an event is still written to ``events.raw``, so replay, audits and the
reconciliation see all traffic, with headers saying who served it and a
signature under the deployment's key (``weir.registry.signing``). The front
passes a signed one by instead of serving it a second time; an unsigned or
forged header changes nothing, and the event is served as any other.
"""

from __future__ import annotations

from weir.contract.messages import Headers

SERVED_BY = "weir.served.by"  # the process that served the event: "http"
SERVED_SIGNATURE = "weir.served.sig"


def served_headers(served_by: str, signature: bytes) -> Headers:
    return [(SERVED_BY, served_by.encode()), (SERVED_SIGNATURE, signature)]


def served_claim(headers: Headers | None) -> tuple[str, bytes] | None:
    """Who claims to have served the record, and the signature of the claim; None if nobody does."""
    found = dict(headers or [])
    served_by, signature = found.get(SERVED_BY), found.get(SERVED_SIGNATURE)
    if served_by is None or signature is None:
        return None
    return served_by.decode("utf-8", errors="replace"), signature
