# Set-up is automatic: every target creates .venv and installs the core and every
# plugin under plugins/ in editable mode the first time (or when a pyproject changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := $(sort $(wildcard plugins/*/pyproject.toml))
OUT ?= runs/digits-quick

.PHONY: run test bench venv clean

$(BIN)/.installed: pyproject.toml $(PLUGINS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $@

venv: $(BIN)/.installed

## The main job: train LeNet-5 on the embedded digits data, pruned to 70%, and print the summary.
run: venv
	$(BIN)/prunekit run --out runs/lenet5-digits-$$(date +%Y%m%d-%H%M%S)

## The test suite (unit tests of the core and of every plugin).
test: venv
	$(BIN)/python -m pytest -q

## Performance figures (JSON), each measured against a baseline in the same run.
bench: venv
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) runs .pytest_cache
