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

# Three test processes (pytest-xdist) for all but the Slurm tests, which run beside them in a
# fourth (they mostly wait on the cluster). Many tests wait on a worker subprocess, so a third
# process keeps both cores busy: 17.7 min against 20.0 with two (bench/RESULTS.md). The Slurm
# report follows the main one. The grouping that makes shared fixtures once is in tests/conftest.py.
test: $(STAMP)
	@log=$$(mktemp); \
	$(BIN)/python -m pytest -n 1 -m slurm > $$log 2>&1 & slurm=$$!; \
	trap 'kill $$slurm 2>/dev/null' INT TERM; \
	$(BIN)/python -m pytest -n 3 --dist loadgroup -m "not slurm"; main=$$?; \
	wait $$slurm; cluster=$$?; \
	echo "== the Slurm tests (pytest -n 1 -m slurm) =="; cat $$log; rm -f $$log; \
	test $$main = 0 && test $$cluster = 0

# the edit-test loop: no end-to-end worker runs (marker `slow`) or Slurm cluster tests; stops at the first failure
test-fast: $(STAMP)
	$(BIN)/python -m pytest -x -m "not slow and not slurm"

clean:
	rm -rf $(VENV)

lint: $(STAMP)
	$(BIN)/ruff check ibtui tests bench
