# Two commands do all set-up on a fresh machine:
#   make run    -> install, then replay the bundled demo stream through the bundled model (no Kafka/Redis)
#   make test   -> install, install redis-server if missing, run the whole test suite (real Redis + Kafka broker)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the labelled CSVs for `make model` / `make eval` / `make bench` (no default inside the package)
MONITOR_DATASET_DIR ?= ../shared/datasets/twitter-financial-news-sentiment
export MONITOR_DATASET_DIR
MONITOR_TOPIC_DATASET_DIR ?= ../shared/datasets/twitter-financial-news-topic
export MONITOR_TOPIC_DATASET_DIR

.PHONY: install run test lint model eval bench bench-short bench-gpu chaos demo-data docs clean redis-server chromium prometheus-tools

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
	@command -v redis-cli >/dev/null || { echo "redis-cli missing (it builds the test Redis Cluster): apt-get install -y redis-tools" >&2; exit 1; }

# promtool (rule checks) and prometheus-alertmanager (the Alertmanager sink's integration test)
prometheus-tools:
	@command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq prometheus prometheus-alertmanager) >/dev/null; \
	  else echo "promtool/alertmanager missing: sudo apt-get install -y prometheus prometheus-alertmanager" >&2; exit 1; fi; }
	@command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null || { echo "prometheus tools still missing" >&2; exit 1; }

# the dashboard's browser test drives Debian chromium through its chromedriver (fails if missing)
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null; \
	  else echo "chromium missing: sudo apt-get install -y chromium chromium-driver" >&2; exit 1; fi; }
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { echo "chromium/chromedriver still missing" >&2; exit 1; }

test: install redis-server chromium prometheus-tools
	$(VENV)/bin/ruff check monitor consumers alerts tests benchmarks scripts
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check monitor consumers alerts tests benchmarks scripts
	$(VENV)/bin/mypy

model: install
	$(VENV)/bin/monitor train --output monitor/classify/default_model --num-threads 1

eval: install
	$(VENV)/bin/monitor eval

bench: install redis-server
	$(PY) benchmarks/bench_classifier.py
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_detection.py --no-progress
	$(PY) -m benchmarks.bench_entities
	$(PY) benchmarks/bench_soak.py            # 10 minutes live: Kafka (tansu) -> daemon -> Redis

bench-short: install redis-server           # ~2 minutes: smoke versions of the classifier and soak runs
	$(PY) benchmarks/bench_classifier.py --quick
	$(PY) benchmarks/bench_soak.py --short

bench-gpu: install                           # on an NVIDIA GPU host (< 5 min); elsewhere one line, exit 0
	$(PY) benchmarks/bench_gpu.py

docs: install
	$(PY) -m monitor.settings_reference

# long fault drills (kill -9 loops, Redis/broker freezes, Redis restarts; ~10k messages) -> table
chaos: install redis-server
	$(PY) scripts/chaos.py

demo-data:
	$(PY) scripts/make_demo_stream.py

clean:
	rm -rf $(VENV) var reports .mypy_cache .ruff_cache .pytest_cache
