"""uvicorn's HTTP/1.1 protocol (httptools), with the limits a public endpoint needs that uvicorn does not set.

Measured with a raw socket against uvicorn 0.55 and httptools 0.9, before any
of this:

* A request httptools cannot parse (a Content-Length of ``abc``, ``-1``,
  ``1,2``, empty or too large, two of them, one beside Transfer-Encoding) is
  answered by uvicorn itself, before the app sees it: 400, ``text/plain``
  "Invalid HTTP request received.", and the connection closed. Sensible, but
  not JSON like every other refusal of the service, silent on what was wrong,
  and not counted.
* Nothing bounds the time a request's headers take: uvicorn's
  ``timeout_keep_alive`` runs only between requests, so a connection that
  sends nothing, or its headers a byte at a time, is held as long as the
  client likes.
* Nothing bounds their size either (h11 stops at 16 KiB; httptools buffers
  all): one header of 200 MB was taken in, and the process grew to 344 MB.

So here the first is answered in JSON with the parser's reason; a request
whose headers have not all come within WEIR_HTTP_HEADER_TIMEOUT_S of its first
byte gets 408, and a connection that sends nothing that long before its first
request is closed; headers over ``MAX_HEADER_BYTES`` get 431. Each refusal is
counted under the route ``PROTOCOL_ROUTE``. The body's own deadline is the
app's (WEIR_HTTP_BODY_TIMEOUT_S, ``apps.service.app``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

# What h11 and nginx allow, give or take: 16 KiB and 4 x 8 KiB. Headers still coming are measured after each read
# (up to 256 KiB), so a client may get that much past the limit before it is refused.
MAX_HEADER_BYTES = 65_536
PROTOCOL_ROUTE = "(protocol)"  # the route label of requests refused before there is a route


def guarded_protocol(header_timeout_s: float, refused: Callable[[int], None],
                     max_header_bytes: int = MAX_HEADER_BYTES) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline and a size limit on headers, JSON refusals, and ``refused``
    called with the status of each refusal."""
    too_large = (431, f"the request's line and headers are over {max_header_bytes} bytes")

    class GuardedProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.deadline: asyncio.TimerHandle | None = None
            self.in_headers = False  # a request has begun and its headers are not all in
            self.in_body = False  # between a request's headers and its end: what comes is body
            self.header_bytes = 0  # read since the last headers completed, bar body
            self.refusal: tuple[int, str] | None = None  # why a callback stopped the parser, for send_400_response

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.arm()  # the first request must begin, and its headers arrive, in time

        def connection_lost(self, exc: Exception | None) -> None:
            self.disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if not self.in_body:
                self.header_bytes += len(data)
            super().data_received(data)
            if self.in_headers and self.header_bytes > max_header_bytes and not self.transport.is_closing():
                self.refuse(*too_large)  # headers that have not ended yet

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.in_headers = True
            if self.deadline is None:  # a later request (the first one's deadline runs from the connection's opening)
                self.arm()

        def on_headers_complete(self) -> None:
            self.in_headers, self.in_body, self.header_bytes = False, True, 0
            self.disarm()
            if len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) > max_header_bytes:
                self.refusal = too_large  # headers that ended within one read
                raise ValueError(too_large[1])  # httptools stops, and uvicorn calls send_400_response
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self.in_body = False
            super().on_message_complete()

        def arm(self) -> None:
            self.disarm()
            self.deadline = self.loop.call_later(header_timeout_s, self.too_slow)

        def disarm(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def too_slow(self) -> None:
            self.deadline = None
            if self.transport.is_closing():
                return
            if not self.in_headers:  # nothing sent yet: no request to answer
                self.transport.close()
            elif self.cycle is not None and not self.cycle.response_complete:  # pipelined behind an answer
                self.arm()  # that one first: an answer now would cut into it
            else:
                self.refuse(408, f"the request's headers did not arrive within {header_timeout_s:g} s "
                                 "(WEIR_HTTP_HEADER_TIMEOUT_S)")

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to what httptools could not parse, called while it handles the parser's error."""
            if self.refusal is not None:
                self.refuse(*self.refusal)
                return
            error = sys.exc_info()[1]
            self.refuse(400, f"not a valid HTTP request: {error}" if isinstance(error, httptools.HttpParserError)
                        else msg)

        def refuse(self, status: int, message: str) -> None:
            self.disarm()
            body = json.dumps({"error": message}).encode()
            head = [STATUS_LINE[status], *(name + b": " + value + b"\r\n"
                                           for name, value in self.server_state.default_headers),
                    b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode(),
                    b"\r\nconnection: close\r\n\r\n"]
            self.transport.write(b"".join(head) + body)
            self.transport.close()
            refused(status)

    return GuardedProtocol
