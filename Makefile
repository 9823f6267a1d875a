# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# llama-cpp-python is built portable (AVX2 floor, no -march=native, no AMX) into .wheelhouse/, keyed by
# its version and flags; pip's cache is never used for it. The stamp changes when the key does.
LLAMA  := $(VENV)/.llama-$(shell scripts/llama_wheel.sh --key)

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# the first build compiles llama.cpp (7-12 min on 2 cores); later venvs reuse the wheel in .wheelhouse/
$(LLAMA): scripts/llama_wheel.sh pyproject.toml | $(BIN)/python
	PIP=$(BIN)/pip scripts/llama_wheel.sh
	rm -f $(VENV)/.llama-* $(VENV)/.installed $(VENV)/.installed-dev
	touch $@

$(VENV)/.installed: pyproject.toml $(LLAMA)
	$(BIN)/pip install -e .
	$(BIN)/python -m retable.llm.portable
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(LLAMA)
	$(BIN)/pip install -e '.[dev]'
	$(BIN)/python -m retable.llm.portable
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/retable adapt examples/scifact-like.txt --out runs/demo --formats keyword,question,claim --holdout-formats claim
	@echo "the report is in runs/demo/report.html (report.md and audit.json beside it)"

# lint first (ruff; import-linter: no import cycles, no library module importing a command), then every test
test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs .pytest_cache
