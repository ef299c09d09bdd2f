# resviz: `make run` starts the dashboard, `make test` runs the test suite.
# Both create a project-local virtual environment in .venv and are safe to repeat.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch is pinned to a CPU build; pass extra pip arguments (e.g. an index of CPU wheels) here.
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test setup system-deps test-deps lint bench clean

run: setup
	$(PY) -m streamlit run app.py --server.address 127.0.0.1 --server.headless true

test: setup test-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

setup: $(VENV)/.installed system-deps

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch first, from the CPU build, so that no dependency pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(PIP) install -e ".[dev]"
	@touch $@

# Graphviz's `dot` renders diagrams to SVG/PNG/PDF; without it resviz still writes .dot sources.
system-deps:
	@command -v dot >/dev/null 2>&1 || sh scripts/apt-install.sh graphviz || \
	  echo "note: Graphviz 'dot' is missing; install it with: sudo apt-get install graphviz"

# Headless Chromium drives the dashboard's browser test.
test-deps:
	@command -v chromium >/dev/null 2>&1 || \
	  sh scripts/apt-install.sh chromium || \
	  echo "note: chromium is missing; the browser test will be skipped (sudo apt-get install chromium)"

lint: setup
	$(VENV)/bin/ruff check resviz tests bench app.py
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/static_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
