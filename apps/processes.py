"""Weir processes started from Python: a worker or HTTP service subprocess, its stop, and its /metrics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from pydantic import SecretStr

from weir.settings import Settings


def free_port() -> int:
    """A loopback port nobody listens on now, for a worker's /metrics."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read exactly ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIR_")}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):  # the child needs the secret itself, as the parent got it
            value = value.get_secret_value()
        if value is not None:
            env[f"WEIR_{name.upper()}"] = str(value)
    return env


def start_worker(settings: Settings, log_path: Path, *stages: str, loglevel: str = "warn") -> subprocess.Popen[bytes]:
    """The stream stages in their own process, as in production, logging to ``log_path``."""
    env = settings_env(settings)
    args = [sys.executable, "-m", "apps", "worker", "--loglevel", loglevel]
    for stage in stages:
        args += ["--stage", stage]
    with open(log_path, "ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def start_service(settings: Settings, log_path: Path, loglevel: str = "warning") -> subprocess.Popen[bytes]:
    """``weir serve-http`` in its own process, on ``settings.http_port``, logging to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "apps", "serve-http", "--loglevel", loglevel],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=settings_env(settings))


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    """SIGTERM, a grace period for the in-flight batch and the final commit, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def scrape(settings: Settings, timeout_s: float = 5.0) -> str:
    """A worker's /metrics exposition text (the worker runs with ``settings.web_port``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics", timeout=timeout_s) as response:
        return str(response.read().decode())
