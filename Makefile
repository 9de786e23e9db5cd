PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast install clean lint

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch/torchvision pinned to the builds pip finds on local disk (no multi-GB download)
	$(BIN)/python -m pip install "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/ibtui run experiments.toml

# two test processes (pytest-xdist); the grouping that keeps shared fixtures made once is in tests/conftest.py
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# the edit-test loop: no end-to-end worker runs (marker `slow`) or Slurm cluster tests; stops at the first failure
test-fast: $(STAMP)
	$(BIN)/python -m pytest -x -m "not slow and not slurm"

clean:
	rm -rf $(VENV)

lint: $(STAMP)
	$(BIN)/ruff check ibtui tests bench
