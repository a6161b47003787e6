# One entry point for every chore. `make demo` and `make test` each do all set-up on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHP := hub/node_modules/.bin/configurable-http-proxy
ENCLAVE_HOME ?= $(CURDIR)/var
export ENCLAVE_HOME
# The workspace environment (images/requirements.lock + images/jupyter/), shared by the demo and the tests.
ENCLAVE_WORKSPACE_ENV ?= $(CURDIR)/.workspace
export ENCLAVE_WORKSPACE_ENV

# Debian packages: build tools for the venv, htslib's command-line tools as the benchmark baseline, Tesseract
# for the airlock's OCR of figures, Chromium for the web app's browser tests (driven by Playwright, never downloaded),
# Node.js and npm for JupyterHub's proxy (configurable-http-proxy, pinned in hub/package-lock.json), bubblewrap for
# the workspace sandbox and Debian's libseccomp bindings to compile its filter (hub/seccomp.py), nftables and
# iproute2 for the host egress rule and its test (provisioning/host.py), systemd's systemd-analyze to verify the units
# `enclave install` writes, PostgreSQL (server and pg_dump) for the registry tests that run on it as well as SQLite
# (tests/postgres.py initdbs and starts a throwaway cluster of its own on a Unix socket), SLURM's controller, node
# daemon and commands with munge for projects' Dask clusters on SLURM and their tests (tests/slurm.py and the SLURM
# benchmarks start a one-machine SLURM of their own: clusters/dev_slurm.py).
DEBIAN_PACKAGES := python3-venv python3-dev build-essential bcftools tabix tesseract-ocr tesseract-ocr-eng chromium \
	nodejs npm nftables bubblewrap iproute2 python3-seccomp systemd postgresql slurmctld slurmd slurm-client munge

.PHONY: demo test check format bench lock system-packages workspace-env clean

# As root: provision the demo, build the workspace environment, start Enclave on http://localhost:8000 (Ctrl-C stops).
demo: $(STAMP) $(CHP)
	$(BIN)/enclave demo

test: $(STAMP) $(CHP) workspace-env
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/pytest -n 2 --dist loadscope $(PYTEST_ARGS)  # unit tests beside the rest (tests/conftest.py)

# Idempotent: rebuilt only when its inputs changed (a stamp inside holds their SHA-256).
workspace-env: $(STAMP)
	$(BIN)/enclave workspace build --dest $(ENCLAVE_WORKSPACE_ENV)

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) $(CHP) workspace-env system-packages
	$(BIN)/python -m bench $(BENCH_ARGS)

# Installs Debian packages when run as root and something is missing; otherwise says what is missing. A command of
# the package's name counts as present: NodeSource's nodejs bundles npm and conflicts with Debian's npm package.
system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Debian packages missing:$$missing (run 'sudo make system-packages')" >&2; fi; \
	fi

# The bootstrap's wheels (uv) are kept in .venv/wheels and installed from there; offline, PIP_NO_INDEX and
# PIP_FIND_LINKS make `pip download` copy them from a wheelhouse (docs/how-to/install.md; the offline install is
# exercised by tests/integration/test_offline_install.py).
$(STAMP): requirements.lock requirements-bootstrap.lock pyproject.toml | system-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
	  -r requirements-bootstrap.lock -d $(VENV)/wheels
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps --no-index \
	  --find-links $(VENV)/wheels -r requirements-bootstrap.lock
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $(STAMP)

# JupyterHub's proxy from npm: exactly the versions and sha512 hashes in hub/package-lock.json, no install scripts.
# (npm stamps unpacked files with an old date, hence the touch.)
$(CHP): hub/package.json hub/package-lock.json | system-packages
	npm ci --prefix hub --ignore-scripts --no-audit --no-fund
	touch $(CHP)

# Re-resolve the lock files (needs the package registry; commit the result).
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock
	cd images && ../$(BIN)/uv pip compile requirements.in --generate-hashes --python-version 3.11 -o requirements.lock
	npm install --prefix hub --package-lock-only --omit-lockfile-registry-resolved=false

clean:
	@# each project's file system is mounted under var/: unmount them first (refused while Enclave runs)
	if [ -x $(BIN)/enclave ] && [ -d var ] && [ "$$(id -u)" = 0 ]; then $(BIN)/enclave host release; fi
	rm -rf $(VENV) var .pytest_cache hub/node_modules .workspace
