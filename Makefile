# The two commands a newcomer needs (see README): `make up` and `make test`.
# Both create .venv and install what they need; both are safe to re-run.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stratus-installed
# Debian packages the project needs beyond a stock Python: xmlsec1 checks SAML signatures;
# npm installs the console's pinned browser assets (never a CDN at run time).
APT_PACKAGES := xmlsec1 nodejs npm
# Only the tests need these: the sign-in test drives Debian's chromium (never `playwright
# install`) and runs the npm oidc-provider IdP with node; the SAML tests sign with xmlsec1; the
# database tests start a private PostgreSQL server from Debian's postgresql (infra/postgres.py);
# the cell TLS tests front a cell with nginx's stream module (infra/cell_frontend.py); the
# multi-host test builds its hosts with iproute2's `ip netns` (infra/netns.py); the tenant
# metrics test scrapes the API with Debian's prometheus.
TEST_APT_PACKAGES := chromium nodejs npm xmlsec1 postgresql nginx libnginx-mod-stream iproute2 prometheus
# The console's browser assets (htmx, pinned by package-lock.json; axe-core for its test).
CONSOLE_ASSETS := controlplane/console/static
CONSOLE_ASSETS_STAMP := $(CONSOLE_ASSETS)/node_modules/.stratus-installed
OIDC_IDP := infra/oidc-idp
OIDC_IDP_STAMP := $(OIDC_IDP)/node_modules/.stratus-installed

.PHONY: up test test-fast install lint typecheck pytest bench bench-billing bench-meter bench-cli bench-console clean system-deps test-deps

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { \
		echo "python venv module missing; installing python3-venv"; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv && $(PYTHON) -m venv $(VENV); }

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	# compat: the repo root goes on sys.path, so packages added later need no reinstall.
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	@touch $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

install: system-deps $(STAMP) $(CONSOLE_ASSETS_STAMP)

$(CONSOLE_ASSETS_STAMP): $(CONSOLE_ASSETS)/package.json $(CONSOLE_ASSETS)/package-lock.json
	cd $(CONSOLE_ASSETS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(CONSOLE_ASSETS_STAMP)

# npm ci only when node_modules is missing or older than the lock file.
$(OIDC_IDP_STAMP): $(OIDC_IDP)/package.json $(OIDC_IDP)/package-lock.json
	cd $(OIDC_IDP) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(OIDC_IDP_STAMP)

test-deps:
	@missing=""; for p in $(TEST_APT_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for the tests:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@$(MAKE) --no-print-directory $(OIDC_IDP_STAMP)
	@command -v kubectl >/dev/null 2>&1 || echo "kubectl missing: tests/infra (Kubernetes manifests) will be skipped; Debian's kubernetes-client is too old for kustomize, install kubectl >= 1.27"

## Set everything up and run Stratus on the embedded default (SQLite + local cells).
up: install
	$(BIN)/stratus up

# lint-imports: the layering contracts of pyproject.toml ([tool.importlinter]).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# --durations: the 25 slowest steps close every full run, so a test that grew slow shows.
# -n: pytest-xdist worker processes (each starts its own shared Stratus per database and its own
# PostgreSQL server; tests/support.py gives each worker its own port range). PYTEST_WORKERS=0
# runs in one process. --dist loadgroup: a module sharing a module-scoped fixture stays on one
# worker (tests/conftest.py marks it).
PYTEST_WORKERS ?= 2
pytest: install test-deps
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25

## Set everything up, then ruff, the import layering contracts, mypy (strict) and the whole
## pytest suite.
test: lint typecheck pytest

## For developers, between edits: ruff and the tests that start no Stratus, cell, IdP, S3 or
## browser (`-m "not slow"`; see tests/conftest.py), in well under a minute.
test-fast: lint
	$(BIN)/pytest -m "not slow"

## Benchmarks (not tests): print JSON. Installs nginx (the gateway bench's peer proxy) if missing.
bench: install
	@[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || { \
		echo "nginx missing; installing the Debian package for the bench's peer proxy"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx; } \
		|| echo "could not install nginx; the bench reports it as unavailable"; }
	$(BIN)/python bench/gateway.py

## Rating a month of 10,000 namespaces x 720 hours x 10 kinds on SQLite (builds a ~GB-sized
## database once, cached under bench/.cache; see bench/billing.py --help).
bench-billing: install
	$(BIN)/python bench/billing.py

bench-meter: install
	$(BIN)/python bench/meter_lock.py

## CPU of `stratus --help` and `stratus namespace list --help` (median of 15 runs each).
bench-cli: install
	$(BIN)/python bench/cli_startup.py

## The console's render p50/p99 (namespace list, workflow list, usage) at 1,000 namespaces and
## 10,000 workflows on a whole `stratus up` (see bench/console.py --help; ~10 min).
bench-console: install
	$(BIN)/python bench/console.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
