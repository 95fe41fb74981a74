# Two commands do all set-up on a fresh machine:
#   make run    -> install, then replay the bundled demo stream through the bundled model (no Kafka/Redis)
#   make test   -> install, install redis-server if missing, run the whole test suite (real Redis + Kafka broker)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint model eval bench demo-data clean redis-server chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch first (on this project's machines the wheel is on disk; elsewhere pip fetches it)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/monitor --config configs/default.toml run

redis-server:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null; \
	  else echo "redis-server missing: sudo apt-get install -y redis-server" >&2; exit 1; fi; }
	@command -v redis-server >/dev/null || { echo "redis-server still missing" >&2; exit 1; }

# the dashboard's browser test drives Debian chromium through its chromedriver (fails if missing)
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null; \
	  else echo "chromium missing: sudo apt-get install -y chromium chromium-driver" >&2; exit 1; fi; }
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { echo "chromium/chromedriver still missing" >&2; exit 1; }

test: install redis-server chromium
	$(VENV)/bin/ruff check monitor consumers alerts tests benchmarks scripts
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check monitor consumers alerts tests benchmarks scripts
	$(VENV)/bin/mypy

model: install
	$(VENV)/bin/monitor train --output monitor/classify/default_model

eval: install
	$(VENV)/bin/monitor eval

bench: install
	$(PY) benchmarks/bench_classifier.py
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_detection.py --no-progress

demo-data:
	$(PY) scripts/make_demo_stream.py

clean:
	rm -rf $(VENV) var reports .mypy_cache .ruff_cache .pytest_cache
