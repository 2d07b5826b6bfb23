# The two commands a newcomer needs (see README): `make up` and `make test`.
# Both create .venv and install what they need; both are safe to re-run.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stratus-installed
# Debian packages the project needs beyond a stock Python (none yet for the embedded default).
APT_PACKAGES :=

.PHONY: up test install lint typecheck pytest bench clean system-deps

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { \
		echo "python venv module missing; installing python3-venv"; \
		apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

install: system-deps $(STAMP)

## Set everything up and run Stratus on the embedded default (SQLite + local cells).
up: install
	$(BIN)/stratus up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

## Set everything up, then ruff, mypy (strict) and the whole pytest suite.
test: lint typecheck pytest

## Benchmarks (not tests): print JSON.
bench: install
	$(BIN)/python bench/gateway.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
