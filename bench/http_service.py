"""The HTTP service against a minimal ASGI endpoint of the same model, on the real broker.

    python -m bench.http_service [--duration 30] [--concurrency 16] [--rate 500] [--smoke]

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

Each figure is printed as soon as it is measured; ``--smoke`` runs every phase
(wrk included) for a second or two.
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

from apps.processes import free_port, start_service
from bench.broker import running_broker
from bench.harness import Child, arguments, figure, wait_for
from producers.churn import ChurnDomain
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


def serve_minimal(model: Path, port: int, workdir: Path) -> Child:
    log = workdir / "minimal.log"
    with open(log, "ab") as out:
        return Child("the minimal endpoint", subprocess.Popen(
            [sys.executable, "-m", "bench.minimal_http", "--model", str(model), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), log)


def wait_ready(url: str, server: Child, body: bytes) -> None:
    def answers() -> bool:
        try:
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for(answers, watching=[server], timeout_s=120, interval_s=0.2, what=f"{url} answering")


def show(name: str, f: Figures, servers: list[Child]) -> Figures:
    """A phase's figure, once both servers are known to have lived through it (a dead one answers no request)."""
    for server in servers:
        server.check()
    figure(name, f"{f.rate:,.0f} requests/s, p50 {f.p50_ms:.2f} ms, p99 {f.p99_ms:.2f} ms, {f.failed} not 200")
    return f


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
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of wrk per endpoint before measuring")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s of the fixed-rate phase")
    parser.add_argument("--bodies", type=int, default=250_000, help="distinct events prepared for each phase")
    args = arguments(parser, {"duration": 2.0, "warmup": 1.0, "rate": 100.0, "bodies": 10_000})
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
        servers: list[Child] = []
        try:
            sign_model_file(run, model)
            register(run, catalog, "default", pickle_path=model)
            register(run, catalog, "default", factory="logistic_regression")  # v2, for the routing change
            route(run, catalog, "default", "basic", champion="v1")
            weir_url = f"http://127.0.0.1:{run.http_port}/predict"
            minimal_port = free_port()
            minimal_url = f"http://127.0.0.1:{minimal_port}/predict"
            log = workdir / "serve-http.log"
            weir = Child("weir serve-http", start_service(run, log), log)
            servers.append(weir)
            minimal = serve_minimal(model, minimal_port, workdir)
            servers.append(minimal)
            wait_ready(weir_url, weir, phases[3][0])
            wait_ready(minimal_url, minimal, phases[3][0])
            print(f"warming up, then {args.duration:g} s per phase ...", flush=True)
            wrk(minimal_url, phases[3][1:], args.concurrency, args.warmup, workdir, once=False)
            wrk(weir_url, phases[3][1:], args.concurrency, args.warmup, workdir)
            closed = f"concurrency {args.concurrency} (wrk, {args.duration:g} s)"
            minimal_closed = show(f"minimal, {closed}", wrk(minimal_url, phases[0], args.concurrency, args.duration,
                                                            workdir, once=False), servers)
            weir_closed = show(f"weir, {closed}", wrk(weir_url, phases[0], args.concurrency, args.duration,
                                                      workdir), servers)
            figure("throughput ratio weir/minimal", f"{weir_closed.rate / minimal_closed.rate:.3f} (goal >= 0.6)")
            fixed = f"{args.rate:g} requests/s offered (open loop, {args.duration:g} s)"
            show(f"minimal, {fixed}", asyncio.run(open_loop(minimal_url, phases[1], args.rate, args.duration)),
                 servers)
            weir_fixed = show(f"weir, {fixed}",
                              asyncio.run(open_loop(weir_url, phases[1], args.rate, args.duration)), servers)
            figure(f"weir p99 at {args.rate:g} requests/s", f"{weir_fixed.p99_ms:.2f} ms (goal <= 10 ms at 500)")
            figure("routing change to the first answer under it",
                   f"{routing_change_ms(run, catalog, weir_url, phases[2]):.0f} ms (goal <= 1000 ms)")
        finally:
            for server in servers:
                server.stop()
            delete_topics(run)


if __name__ == "__main__":
    main()
