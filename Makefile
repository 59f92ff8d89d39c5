# The two commands of the README: `make demo` and `make test`. Both set up
# everything they need (virtual environment, Python packages, Kafka from Maven
# Central) on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
EVENTS ?= 30000
RUNS   ?= runs
BENCH_EVENTS ?= 200000
SOAK_MINUTES ?= 60
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
WEIR   := $(VENV)/bin/weir

.PHONY: demo test check unit bench bench-e2e bench-serve bench-learn bench-front-state bench-drift bench-policy bench-retrain bench-http bench-smoke soak kafka-up kafka-down clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || scripts/install-tools demo
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	scripts/install-tools demo
	$(WEIR) demo --events $(EVENTS) --runs-dir $(RUNS)

# The test files run on two processes (pytest-xdist, a file to a process: most of an integration test waits on the
# broker and its workers), sharing one broker that `weir kafka run` starts first (and stops after, if it started it).
test: check
	scripts/install-tools test
	$(WEIR) kafka run -- $(VENV)/bin/pytest -n 2 --dist loadfile

# Static checks: lint, the layers of the folder tree (import-linter), and types (mypy --strict, code and tests).
check: $(STAMP)
	$(VENV)/bin/ruff check weir streams producers consumers apps bench tests
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# The tiers that need no broker: pure logic and the contracts, in seconds.
unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit tests/contract

bench: $(STAMP)
	$(VENV)/bin/python -m bench.throughput

# The whole loop, exactly once, against the same computation in a plain loop (about half an hour).
bench-e2e: $(STAMP)
	$(VENV)/bin/python -m bench.e2e --events $(BENCH_EVENTS)

bench-drift: $(STAMP)
	$(VENV)/bin/python -m bench.drift

bench-policy: $(STAMP)
	$(VENV)/bin/python -m bench.policy

# Serving while the policy retrains: the front's latency during a retraining against outside it, one worker (about
# 12 minutes).
bench-retrain: $(STAMP)
	$(VENV)/bin/python -m bench.retrain

bench-serve: $(STAMP)
	$(VENV)/bin/python -m bench.serve

bench-learn: $(STAMP)
	$(VENV)/bin/python -m bench.learn

# The front's memory of served event ids: its CPU per event against a front whose memory holds nothing, and how fast
# a partition's memory is restored from its changelog (a few minutes).
bench-front-state: $(STAMP)
	$(VENV)/bin/python -m bench.front_state

# The HTTP service against a minimal ASGI endpoint of the same model: requests/s, p50/p99 (about 3 min).
bench-http: $(STAMP)
	scripts/install-tools bench
	$(VENV)/bin/python -m bench.http_service

# Every bench above in its smoke mode (--smoke: seconds, tiny sizes, the same code paths, the real broker), all at
# once, each checked for its figures (a few minutes): `make test` runs the same tests, so a bench that cannot run
# fails CI.
bench-smoke: $(STAMP)
	scripts/install-tools bench
	$(VENV)/bin/pytest tests/unit/test_bench_harness.py tests/integration/test_benches.py

# The whole loop (front and back as two workers) at 70% of its measured capacity: RSS, lag and exactly-once every
# 30 s (an hour and a few minutes; not part of `make test`).
soak: $(STAMP)
	$(VENV)/bin/python -m bench.soak --minutes $(SOAK_MINUTES)

kafka-up: $(STAMP)
	$(WEIR) kafka up

kafka-down: $(STAMP)
	$(WEIR) kafka down

clean:
	rm -rf $(VENV) runs .pytest_cache
