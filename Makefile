# Set-up is automatic: every target creates .venv and installs the core and every
# plugin under plugins/ in editable mode the first time (or when a pyproject changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := $(sort $(wildcard plugins/*/pyproject.toml))
OUT ?= runs/digits-quick
JOBS ?= 2

.PHONY: run test bench venv clean format

$(BIN)/.installed: pyproject.toml $(PLUGINS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $@

venv: $(BIN)/.installed

## The main job: the digits-quick matrix (sgd and adamw x none/magnitude/movement/state x 50/70/90%
## x 3 seeds on the embedded digits data), then its report. Rerunning resumes: finished runs are kept.
run: venv
	$(BIN)/prunekit matrix --example digits-quick --out $(OUT) --jobs $(JOBS); \
	status=$$?; $(BIN)/prunekit report $(OUT) && exit $$status

## The test suite: lint, format check, strict typing of prunekit and every plugin, the manual's build (strict:
## a broken link, anchor, include or API reference fails), then the unit tests of the core and of
## every plugin (which also check architecture contracts, the frozen prunekit.api and the docs' code).
test: venv
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site  # not --quiet: it hides the warnings that --strict counts
	$(BIN)/python -m pytest -q --durations=15  # the slowest tests, to keep CI short

## Performance figures (JSON), each measured against a baseline in the same run; printed and
## written to runs/bench/<time>-<commit>[-quick].json. QUICK=1: a short subset (minutes, not an hour).
bench: venv
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python benchmarks/run.py $(if $(QUICK),--quick)

## Lint fixes and formatting (ruff, settings in pyproject.toml).
format: venv
	$(BIN)/python -m ruff check --fix .
	$(BIN)/python -m ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache site
