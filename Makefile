# NSNet toolkit. `make demo` and `make test` are all the set-up a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATASET ?= demo
DATA_ROOT ?=
WEIGHTS ?=
LIGHT_WEIGHTS ?=
ARGS ?=

NSNET := $(BIN)/nsnet
DATA_ARGS := --dataset $(DATASET) $(if $(DATA_ROOT),--data-root $(DATA_ROOT))
MODEL_ARGS := $(if $(WEIGHTS),--recognizer-weights $(WEIGHTS)) $(if $(LIGHT_WEIGHTS),--light-weights $(LIGHT_WEIGHTS))

.PHONY: install data features demo test bench-features clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,plots]'
	touch $(STAMP)

install: $(STAMP)

data: install
	$(NSNET) data $(DATA_ARGS) $(ARGS)

features: install
	$(NSNET) features $(DATA_ARGS) $(MODEL_ARGS) $(ARGS)

demo: install
	$(NSNET) data --dataset demo
	$(NSNET) features --dataset demo $(MODEL_ARGS)

test: install
	$(BIN)/python -m pytest -q $(ARGS)

bench-features: install
	$(NSNET) bench-features $(DATA_ARGS) $(MODEL_ARGS) $(ARGS)

clean:
	rm -rf cache data/demo .pytest_cache
