# Every target sets up what it needs, idempotently, on a fresh Debian 12 machine (run as root).
#   make test   the whole suite (unit, real Janus nodes in a private network namespace, lint)
#   make demo       the main job: the whole stack natively, the full incident (500-person room), lab status
#   make incident   the incident alone (starts the stack if needed); make down stops the native stack
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
APT_PACKAGES := janus prometheus prometheus-alertmanager prometheus-node-exporter iproute2 python3-venv
STAMPS := .make

.PHONY: deps test lint demo incident down bench clean

deps: $(STAMPS)/apt $(STAMPS)/venv

$(STAMPS)/apt:
	@mkdir -p $(STAMPS)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt-get install $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

test: deps
	$(PY) -m ruff check services loadtest tests bench
	$(PY) -m pytest

lint: deps
	$(PY) -m ruff check services loadtest tests bench

demo: deps
	@$(VENV)/bin/lab status >/dev/null 2>&1 && echo "a native stack is up: make down first" && exit 1 || true
	$(VENV)/bin/lab scenario incident
	$(VENV)/bin/lab status

incident: deps
	$(VENV)/bin/lab scenario incident

down: deps
	$(VENV)/bin/lab down

bench: deps
	$(PY) bench/signaling_bench.py
	$(PY) bench/exporter_bench.py
	$(PY) bench/harness_bench.py

clean:
	rm -rf $(VENV) $(STAMPS)
