# NSNet toolkit. `make demo` and `make test` are all the set-up a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATASET ?= demo
DATA_ROOT ?=
WEIGHTS ?=
LIGHT_WEIGHTS ?=
MODEL ?= recognizer
ARGS ?=
# Processes the test suite runs on (pytest-xdist; each test file kept in one, so module fixtures
# are built once). 0: the suite in this process.
TEST_WORKERS ?= 2
# torch's threads in each test process and in the commands the tests start (OMP_NUM_THREADS):
# one where several processes fill the cores already (two of two threads each oversubscribed the
# 2-core machine: the suite took 529-567 s against 425-447 s); empty, torch's default, for one.
TEST_THREADS ?= $(if $(filter 0,$(TEST_WORKERS)),,1)
# Annotation files of the list, kinetics and activitynet datasets (see the README's Datasets).
TRAIN_LIST ?=
VAL_LIST ?=
TEST_LIST ?=
CLASS_NAMES ?=
ANNOTATIONS ?=

NSNET := $(BIN)/nsnet
ROOT_ARGS := --dataset $(DATASET) $(if $(DATA_ROOT),--data-root $(DATA_ROOT))
DATA_ARGS := $(ROOT_ARGS) $(if $(TRAIN_LIST),--train-list $(TRAIN_LIST)) $(if $(VAL_LIST),--val-list $(VAL_LIST)) \
	$(if $(TEST_LIST),--test-list $(TEST_LIST)) $(if $(CLASS_NAMES),--class-names $(CLASS_NAMES)) \
	$(if $(ANNOTATIONS),--annotations $(ANNOTATIONS))
MODEL_ARGS := $(if $(WEIGHTS),--recognizer-weights $(WEIGHTS)) $(if $(LIGHT_WEIGHTS),--light-weights $(LIGHT_WEIGHTS))

PRESETS := table1 table2 table4 table6 fig3

.PHONY: install data finetune features prototypes train evaluate ablations predict demo test test-floors bench bench-features bench-train synth-cache bench-scale clean $(PRESETS)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,plots]'
	touch $(STAMP)

install: $(STAMP)

data: install
	$(NSNET) data $(DATA_ARGS) $(ARGS)

finetune: install
	$(NSNET) finetune $(DATA_ARGS) --model $(MODEL) $(ARGS)

features: install
	$(NSNET) features $(DATA_ARGS) $(MODEL_ARGS) $(ARGS)

prototypes: install
	$(NSNET) prototypes --dataset $(DATASET) $(ARGS)

train: install
	$(NSNET) train --dataset $(DATASET) $(ARGS)

evaluate: install
	$(NSNET) evaluate $(ROOT_ARGS) $(ARGS)

ablations: install
	$(NSNET) ablations --dataset $(DATASET) $(ARGS)

# NSNet on new videos: make predict VIDEOS="a.mp4 folder/" [RUN=<sampler run dir>] ARGS=--plot
# (or ARGS="--videos-from list.txt", one path a line)
VIDEOS ?= $(if $(DATA_ROOT),$(DATA_ROOT),data/$(DATASET))
RUN ?=
predict: install
	$(NSNET) predict $(VIDEOS) --dataset $(DATASET) $(if $(RUN),--run $(RUN)) $(ARGS)

# Offline, end to end: demo videos -> fine-tune both backbones -> features with those weights
# -> prototypes and guiding scores -> sampler heads -> evaluation report -> predict one val
# video per class, with saliency pictures (cache/predict/*.png).
# The demo's videos and fine-tuned backbones (each stage does nothing when already done).
define demo-backbones
	$(NSNET) data --dataset demo
	$(NSNET) finetune --dataset demo --model recognizer --out cache/demo/recognizer.pth
	$(NSNET) finetune --dataset demo --model light --out cache/demo/light.pth
endef
DEMO_WEIGHTS := --recognizer-weights cache/demo/recognizer.pth --light-weights cache/demo/light.pth

demo: install
	$(demo-backbones)
	$(NSNET) features --dataset demo $(DEMO_WEIGHTS)
	$(NSNET) prototypes --dataset demo
	$(NSNET) train --dataset demo
	$(NSNET) evaluate --dataset demo
	$(NSNET) predict data/demo/videos/val_*_000.mp4 --dataset demo --plot

# A paper experiment end to end on a dataset: make table1 DATASET=activitynet WEIGHTS=resnet101.pth
# (features with the preset's T and recognizer, prototypes, sampler, then evaluate, or the
# ablations for table6). On the demo, with its fine-tuned backbones. ARGS go to the last stage.
IS_DEMO = $(filter demo,$(DATASET))
$(PRESETS): install
	$(if $(IS_DEMO),$(demo-backbones))
	$(NSNET) features $(DATA_ARGS) $(or $(strip $(MODEL_ARGS)),$(if $(IS_DEMO),$(DEMO_WEIGHTS))) --preset $@
	$(NSNET) prototypes --dataset $(DATASET) --preset $@
	$(NSNET) train --dataset $(DATASET) --preset $@
	$(NSNET) $(if $(filter table6,$@),ablations --dataset $(DATASET),evaluate $(ROOT_ARGS)) --preset $@ $(ARGS)

test: install
	$(if $(TEST_THREADS),OMP_NUM_THREADS=$(TEST_THREADS)) $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(ARGS)

# The suite on the lowest releases pyproject.toml allows (constraints-floors.txt), in a venv of
# its own: checks the declared floors (about 3 GB more to download the first time).
FLOORS_VENV := .venv-floors
$(FLOORS_VENV)/.installed-stamp: pyproject.toml constraints-floors.txt
	$(PYTHON) -m venv $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOORS_VENV)/bin/python -m pip install --quiet -c constraints-floors.txt -e '.[dev,plots]'
	touch $@

test-floors: $(FLOORS_VENV)/.installed-stamp
	$(if $(TEST_THREADS),OMP_NUM_THREADS=$(TEST_THREADS)) $(FLOORS_VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(ARGS)

bench: install
	$(NSNET) bench $(ARGS)

bench-features: install
	$(NSNET) bench-features $(DATA_ARGS) $(MODEL_ARGS) $(ARGS)

bench-train: install
	$(NSNET) bench-train --dataset $(DATASET) $(ARGS)

# Caches and stages at a real dataset's size, without its videos: LIKE=activitynet|fcvid|minikinetics|ucf101
LIKE ?= activitynet
FRACTION ?= 1
synth-cache: install
	$(NSNET) synth-cache --like $(LIKE) --fraction $(FRACTION) $(ARGS)

bench-scale: install
	$(NSNET) bench-scale --like $(LIKE) --fraction $(FRACTION) $(ARGS)

clean:
	rm -rf cache data/demo .pytest_cache
