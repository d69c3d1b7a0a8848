# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
LLAMA_CPP_VERSION := $(shell sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)
QUESTION ?= Seit wann unterhält Kasachstan diplomatische Beziehungen zu Israel?

.PHONY: setup demo test test-quick lint eval bench clean

$(STAMP): pyproject.toml scripts/install-llama-cpp.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch on disk; a newer torch would pull gigabytes of CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	# llama-cpp-python compiles from source once (~8 min on 2 cores) for this CPU, without AMX;
	# the wheel is cached under a key of the flags and the CPU (see the script).
	scripts/install-llama-cpp.sh $(BIN)/python $(LLAMA_CPP_VERSION)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/rag models pull

demo: setup
	$(BIN)/rag index seeds/
	$(BIN)/rag doctor
	$(BIN)/rag ask "$(QUESTION)"

lint: $(STAMP)
	$(BIN)/ruff check rag tests bench
	$(BIN)/ruff format --check rag tests bench
	$(BIN)/mypy

# Full suite: lint, type check, every test (real default model included), then the
# evaluation with the floors of evals/floors.txt (the rule that sets them: evals/RESULTS.md).
test: setup lint
	$(BIN)/pytest -q -p no:cacheprovider; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc
	$(MAKE) eval

# Quick local run: skips the tests that load the 1.1 GB model.
test-quick: $(STAMP)
	$(BIN)/pytest -q -m "not slow"; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc

EVAL_FLOORS := $(shell cat evals/floors.txt 2>/dev/null)
eval: setup
	$(BIN)/rag index seeds/
	$(BIN)/rag eval --out evals/runs/latest $(EVAL_FLOORS)

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) index evals/runs
