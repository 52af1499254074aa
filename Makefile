# gdjax quick start. `make run` trains the default model; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/cnn_fashion_mnist.py
WORKDIR ?= workdirs/cnn_fashion_mnist
FASHION_MNIST_DIR ?= $(or $(GDJAX_FASHION_MNIST_DIR),/usr/share/datasets/fashion-mnist)
export TF_CPP_MIN_LOG_LEVEL ?= 3

GAN_CONFIG ?= configs/dcgan_fashion_mnist.py
GAN_WORKDIR ?= workdirs/dcgan_fashion_mnist

.PHONY: run gan test lint format data install clean

$(BIN)/gdjax: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/gdjax

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

# Trains the default config, then evaluates it on the test split.
run: install data
	$(BIN)/gdjax train --config $(CONFIG) --workdir $(WORKDIR)
	$(BIN)/gdjax eval --workdir $(WORKDIR)
	@echo "Results: $(WORKDIR)/eval_test.json, $(WORKDIR)/metrics.jsonl, TensorBoard logs in $(WORKDIR)/tensorboard"

# Trains the default DCGAN; sample grids land in $(GAN_WORKDIR)/samples, FID etc. in metrics.jsonl.
gan: install data
	$(BIN)/gdjax train --config $(GAN_CONFIG) --workdir $(GAN_WORKDIR)
	$(BIN)/gdjax eval --workdir $(GAN_WORKDIR)
	@echo "Sample grids: $(GAN_WORKDIR)/samples/; FID, KID, precision/recall: $(GAN_WORKDIR)/eval_test.json"

lint: install
	$(BIN)/ruff check gdjax tests benchmarks configs
	$(BIN)/ruff format --check gdjax tests benchmarks configs

format: install
	$(BIN)/ruff format gdjax tests benchmarks configs

test: install lint
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) workdirs .pytest_cache
