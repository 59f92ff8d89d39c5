"""The HTTP benchmark's baseline: a minimal ASGI endpoint that calls the same model without Weir.

    python -m bench.minimal_http --model MODEL.pkl --port PORT

One bare ASGI callable on the same server (uvicorn, uvloop, httptools): it
reads the same JSON body, computes the same features, asks the same trained
model and answers the same label and score. It validates nothing, writes
nothing, routes nothing and follows no registry: what it costs is the floor
an HTTP endpoint of this model has in Python.
"""

from __future__ import annotations

import argparse
import json
import pickle
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

from weir.contract.features import compute_features
from weir.registry.factories import as_classifier, positive_score

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def build(model_path: Path) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    classifier = as_classifier(pickle.loads(model_path.read_bytes()))  # the bench's own file, trained in-process
    assert classifier is not None, "the benchmark's model is a classifier"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        event = json.loads(body)
        proba = classifier.predict_proba_one(compute_features(event["attributes"]))
        answer = {"event_id": event["event_id"], "entity_id": event["entity_id"],
                  "predicted_label": max(proba, key=proba.__getitem__), "score": positive_score(proba)}
        payload = json.dumps(answer).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build(args.model), host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
