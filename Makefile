# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# llama-cpp-python compiles from source the first time (7-12 min); pip caches the wheel after that.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/retable adapt examples/scifact-like.txt --out runs/demo --formats keyword,question,claim --holdout-formats claim
	@echo "the report is in runs/demo/report.html (report.md and audit.json beside it)"

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs .pytest_cache
