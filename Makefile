# The two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := prometheus prometheus-alertmanager docker-compose faketime openssl chromium postgresql
LISTEN ?= 127.0.0.1:9464

# Most tests wait on loopback servers rather than compute, so three workers fit two cores.
# A test file runs whole on one worker: the e2e files share a world per worker.
PYTEST_WORKERS ?= 3
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile
# Bytecode caches are written even where the environment says PYTHONDONTWRITEBYTECODE:
# without them every worker compiles and rewrites each test module again (collecting takes
# 5 s a worker instead of 2) and every `python -m observer` a test starts compiles the package.
# __pycache__/ is git-ignored.
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

.PHONY: run cluster test test-fast lint typecheck bench generate system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: Observer against the embedded simulator, exporter on $(LISTEN)
## (plus native Prometheus and Alertmanager when their binaries are installed).
run: $(STAMP)
	$(BIN)/observer run --listen $(LISTEN) --with-stack auto

## cluster: a throwaway PostgreSQL, the simulator and three members with three keys
## on loopback, as one collector; Ctrl-C stops and removes everything.
cluster: $(STAMP) system-deps
	$(BIN)/observer cluster demo

## test: install what the tests need (venv, Debian packages) and run the suite.
test: $(STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(PYTEST) $(PYTEST_PARALLEL)

## test-fast: the inner loop: everything but the e2e and slow tests (about a minute).
## slow: real external tools (promtool, amtool, docker-compose), real-time waits, measurements.
test-fast: $(STAMP)
	$(PYTEST) $(PYTEST_PARALLEL) -m "not e2e and not slow"

## system-deps: the Debian packages the end-to-end tests run for real.
system-deps:
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || missing="$$missing faketime"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v victoria-metrics >/dev/null || missing="$$missing victoria-metrics"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

generate: $(STAMP)
	$(BIN)/observer generate --out compose

bench: $(STAMP)
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
