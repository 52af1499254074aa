# gdjax quick start. `make run` trains the default DCGAN; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/dcgan_fashion_mnist.py
WORKDIR ?= workdirs/dcgan_fashion_mnist
FASHION_MNIST_DIR ?= $(or $(GDJAX_FASHION_MNIST_DIR),/usr/share/datasets/fashion-mnist)
export TF_CPP_MIN_LOG_LEVEL ?= 3

CLASSIFIER_CONFIG ?= configs/cnn_fashion_mnist.py
CLASSIFIER_WORKDIR ?= workdirs/cnn_fashion_mnist

.PHONY: run classifier test lint format data install clean

$(BIN)/gdjax: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/gdjax

# Ray, for `gdjax sweep --launcher ray` and its test (an optional extra).
$(VENV)/.ray-installed: $(BIN)/gdjax
	$(BIN)/pip install --quiet -e '.[test,ray]'
	touch $@

# gdjax serve (an optional extra), and tritonclient in a venv of its own for the serving tests:
# it pins an ml_dtypes older than jax's.
$(VENV)/.serve-installed: $(BIN)/gdjax
	$(BIN)/pip install --quiet -e '.[test,serve]'
	touch $@

$(VENV)/tritonclient/bin/python:
	$(PYTHON) -m venv $(VENV)/tritonclient
	$(VENV)/tritonclient/bin/pip install --quiet 'tritonclient[http]==2.73.0'

# Fashion-MNIST's IDX files from Debian's package (no internet needed beyond apt).
data:
	@if [ -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST found in $(FASHION_MNIST_DIR)"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)) >/dev/null; \
	elif command -v sudo >/dev/null; then \
	  sudo apt-get update -q && sudo apt-get install -y -q dataset-fashion-mnist; \
	else \
	  echo "Install Debian's dataset-fashion-mnist, or set GDJAX_FASHION_MNIST_DIR to a directory of the IDX files."; \
	fi

# The main job: trains the default DCGAN (5,000 steps; about 10 minutes on 2 idle CPU cores, docs/gan_recipes.md), evaluates
# its best checkpoint (by validation FID) on the test split, and shows where its
# last sample grid is, its FID, precision, recall and how its samples spread over the classes.
run: install data
	$(BIN)/gdjax train --config $(CONFIG) --workdir $(WORKDIR)
	$(BIN)/gdjax eval --workdir $(WORKDIR) --checkpoint best
	@echo "Sample grids (one per eval, fixed noise): $(WORKDIR)/samples/, latest $$(ls -1 $(WORKDIR)/samples/*.png | tail -n 1)"
	@$(BIN)/python -c "import json; m = json.load(open('$(WORKDIR)/eval_test.json')); print('Step %d: FID %.1f, precision %.3f, recall %.3f, smallest class share %.3f (EMA generator, %d samples vs the test split) in $(WORKDIR)/eval_test.json' % (m['step'], m['quality/fid'], m['quality/precision'], m['quality/recall'], m['coverage/min_class_share'], m['quality/num_generated']))"

# Trains the CNN classifier, then evaluates it on the test split.
classifier: install data
	$(BIN)/gdjax train --config $(CLASSIFIER_CONFIG) --workdir $(CLASSIFIER_WORKDIR)
	$(BIN)/gdjax eval --workdir $(CLASSIFIER_WORKDIR) --checkpoint best
	@echo "Results: $(CLASSIFIER_WORKDIR)/eval_test.json, $(CLASSIFIER_WORKDIR)/metrics.jsonl, TensorBoard logs in $(CLASSIFIER_WORKDIR)/tensorboard"

lint: install
	$(BIN)/ruff check gdjax tests benchmarks configs
	$(BIN)/ruff format --check gdjax tests benchmarks configs

format: install
	$(BIN)/ruff format gdjax tests benchmarks configs

# End-to-end runs of gdjax commands in subprocesses (`slow`), multi-process
# tests (several `gdjax train` processes over loopback), the Ray
# launcher's tests (a local Ray instance kept on loopback) and the live `gdjax serve`
# tests (servers on loopback) run as their own steps.
test: install lint $(VENV)/.ray-installed $(VENV)/.serve-installed $(VENV)/tritonclient/bin/python
	$(BIN)/python -m pytest -q tests -m "not slow and not multiprocess and not ray and not serve" --durations=20
	$(BIN)/python -m pytest -q tests -m "slow and not multiprocess and not ray and not serve" --durations=10
	$(BIN)/python -m pytest -q tests -m multiprocess
	$(BIN)/python -m pytest -q tests -m ray
	$(BIN)/python -m pytest -q tests -m serve

clean:
	rm -rf $(VENV) workdirs .pytest_cache
