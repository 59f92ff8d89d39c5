"""The HTTP service against a minimal ASGI endpoint of the same model, on the real broker.

    python -m bench.http_service [--duration 30] [--concurrency 16] [--rate 500]

A logistic regression is trained here on 5,000 labelled churn events, pickled,
signed and registered as the champion; ``weir serve-http`` serves it in its
own process, and ``bench.minimal_http`` serves the same file in another. Both
get the same request bodies (fresh churn events; every event id is sent once,
so Weir's retry memory never answers):

1. throughput at a fixed concurrency: wrk (C, one thread) keeps
   ``--concurrency`` requests in flight for ``--duration`` seconds against each
   endpoint; requests/s is wrk's count over that span, with p50 and p99;
2. latency at a fixed rate: an open-loop client sends ``--rate`` requests/s
   for ``--duration`` seconds, each timed from when it was due (a slow answer
   delays nobody's clock), against each endpoint;
3. a routing change: milliseconds from its record's creation to the first
   answer served under it.

Goals (issue 17): Weir's p99 at 500 requests/s at most 10 ms; its throughput at
least 0.6 of the minimal endpoint's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from apps.processes import free_port, start_service, stop_process
from bench.broker import running_broker
from producers.churn import ChurnDomain
from weir.clock import poll_until
from weir.contract.features import compute_features
from weir.contract.serde import SchemaCatalog, open_catalog
from weir.kafka.admin import create_topics, delete_topics
from weir.registry.decisions import register, route, sign_model_file
from weir.registry.factories import build_model
from weir.settings import Settings

WRK_SCRIPT = """
local bodies = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
request = function()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format('WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non2xx": %d, '
    .. '"errors": %d}\\n', summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout))
end
"""


@dataclass(frozen=True)
class Figures:
    """Requests answered over a span, their latency percentiles, and how many were not 200."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def bodies(count: int, seed: int) -> list[bytes]:
    """Fresh churn events as ``/predict`` bodies, each event id once and the customers of each seed their own (the
    entity rules would refuse a customer whose region changed); the service stamps their time."""
    run = uuid.uuid4().hex[:6]
    return [json.dumps({"event_id": f"bench-{run}-{i}", "entity_id": f"{run}-{e.entity_id}",
                        "attributes": e.attributes}).encode()
            for i, e in enumerate(ChurnDomain(seed=seed, customers=50_000).events(count))]


def trained_model(path: Path) -> Path:
    """A logistic regression that has learned 5,000 labelled churn events, pickled to ``path``."""
    model = build_model("logistic_regression", {})
    for e in ChurnDomain(seed=1, customers=5_000).events(5_000):
        assert e.label is not None, "the churn domain labels every event"
        model.learn_one(compute_features(e.attributes), e.label)
    path.write_bytes(pickle.dumps(model))
    return path


def wrk(url: str, lines: list[bytes], concurrency: int, duration_s: float, workdir: Path, *,
        once: bool = True) -> Figures:
    """wrk at a fixed concurrency; ``once``: refuse a run that sent a body twice (Weir would answer a repeated
    event id from memory, and its entity rules would refuse a customer's tenure going back)."""
    script, data = workdir / "post.lua", workdir / f"bodies-{uuid.uuid4().hex[:6]}.jsonl"
    script.write_text(WRK_SCRIPT)
    data.write_bytes(b"\n".join(lines) + b"\n")
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{int(duration_s)}s", "--timeout", "10s",
                          "-s", str(script), url, "--", str(data)], capture_output=True, text=True, check=True).stdout
    found = json.loads(next(line[4:] for line in out.splitlines() if line.startswith("WRK ")))
    if once and found["requests"] > len(lines):
        raise SystemExit(f"wrk sent {found['requests']} requests but had {len(lines)} bodies: raise --bodies")
    return Figures(found["requests"], found["duration_us"] / 1e6, found["p50_us"] / 1000, found["p99_us"] / 1000,
                   found["non2xx"] + found["errors"])


async def open_loop(url: str, lines: list[bytes], rate: float, duration_s: float) -> Figures:
    """``rate`` requests/s, each timed from when it was due, whatever the answers before it took."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    failed = 0

    async def one(session: aiohttp.ClientSession, body: bytes, due: float) -> None:
        nonlocal failed
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
            await response.read()
            failed += response.status != 200
        latencies.append(loop.time() - due)

    count = int(rate * duration_s)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        started = loop.time()
        tasks = []
        for i in range(count):
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            tasks.append(asyncio.create_task(one(session, lines[i], due)))
        await asyncio.gather(*tasks)
        span = loop.time() - started
    latencies.sort()
    return Figures(count, span, latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000,
                   failed)


def serve_minimal(model: Path, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    with open(workdir / "minimal.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "bench.minimal_http", "--model", str(model), "--port",
                                 str(port)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_ready(url: str, process: subprocess.Popen[bytes], body: bytes) -> None:
    def answers() -> bool:
        assert process.poll() is None, f"the server at {url} exited with {process.returncode}"
        try:
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    poll_until(answers, timeout_s=120, interval_s=0.2, what=f"{url} answering")


def routing_change_ms(run: Settings, catalog: SchemaCatalog, url: str, lines: list[bytes]) -> float:
    """From a routing record's creation to the first answer served by the version it routes to."""
    change = route(run, catalog, "default", "basic", champion="v2")
    for body in lines:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            if json.loads(response.read())["model_version"] == "v2":
                return time.time() * 1000 - change["created_at"]
    raise SystemExit("the routing change never reached the service")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per measured phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s of the fixed-rate phase")
    parser.add_argument("--bodies", type=int, default=250_000, help="distinct events prepared for each phase")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: scripts/install-tools bench installs it (make bench-http does)")
    workdir = Path(tempfile.mkdtemp(prefix="weir-bench-http-"))
    model = trained_model(workdir / "model.pkl")
    print(f"preparing {args.bodies:,} request bodies per phase ...", flush=True)
    phases = [bodies(args.bodies, seed) for seed in range(4)]
    with running_broker() as settings:
        catalog = open_catalog(settings)
        tag = uuid.uuid4().hex[:6]
        run = settings.with_overrides(topic_prefix=f"bench-http-{tag}.", app_id=f"bench-http-{tag}",
                                      http_port=free_port(), http_source="churn", default_factory="")
        create_topics(run)
        weir = minimal = None
        try:
            sign_model_file(run, model)
            register(run, catalog, "default", pickle_path=model)
            register(run, catalog, "default", factory="logistic_regression")  # v2, for the routing change
            route(run, catalog, "default", "basic", champion="v1")
            weir_url = f"http://127.0.0.1:{run.http_port}/predict"
            minimal_port = free_port()
            minimal_url = f"http://127.0.0.1:{minimal_port}/predict"
            weir, minimal = start_service(run, workdir / "serve-http.log"), serve_minimal(model, minimal_port, workdir)
            wait_ready(weir_url, weir, phases[3][0])
            wait_ready(minimal_url, minimal, phases[3][0])
            print(f"warming up, then {args.duration:g} s per phase ...", flush=True)
            wrk(minimal_url, phases[3][1:], args.concurrency, 5, workdir, once=False)
            wrk(weir_url, phases[3][1:], args.concurrency, 5, workdir)
            closed = {"minimal": wrk(minimal_url, phases[0], args.concurrency, args.duration, workdir, once=False),
                      "weir": wrk(weir_url, phases[0], args.concurrency, args.duration, workdir)}
            fixed = {"minimal": asyncio.run(open_loop(minimal_url, phases[1], args.rate, args.duration)),
                     "weir": asyncio.run(open_loop(weir_url, phases[1], args.rate, args.duration))}
            reload_ms = routing_change_ms(run, catalog, weir_url, phases[2])
        finally:
            for process in (weir, minimal):
                if process is not None:
                    stop_process(process)
            delete_topics(run)
    print(f"\nat concurrency {args.concurrency} (wrk, {args.duration:g} s each):")
    print(f"{'endpoint':>10} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'not 200':>8}")
    for name, f in closed.items():
        print(f"{name:>10} {f.rate:11.0f} {f.p50_ms:8.2f} {f.p99_ms:8.2f} {f.failed:8d}")
    print(f"throughput ratio weir/minimal: {closed['weir'].rate / closed['minimal'].rate:.3f} (goal >= 0.6)")
    print(f"\nat {args.rate:g} requests/s (open loop, {args.duration:g} s each):")
    print(f"{'endpoint':>10} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'not 200':>8}")
    for name, f in fixed.items():
        print(f"{name:>10} {f.rate:11.0f} {f.p50_ms:8.2f} {f.p99_ms:8.2f} {f.failed:8d}")
    print(f"weir p99 at {args.rate:g} requests/s: {fixed['weir'].p99_ms:.2f} ms (goal <= 10 ms)")
    print(f"\nrouting change to the first answer under it: {reload_ms:.0f} ms (goal <= 1000 ms)")


if __name__ == "__main__":
    main()
