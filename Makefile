# resviz: `make run` starts the dashboard, `make test` runs the test suite.
# Both create a project-local virtual environment in .venv with every extra installed, and are safe to
# repeat. `make check-heavy` runs the heavier real checks in tests/heavy/ (marker `heavy`), which
# `make test` leaves out: building the package and installing it into a clean environment, and what
# else needs the `docs` and `notebooks` extras.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch is pinned; which build of it pip installs depends on the index pip uses. With empty
# TORCH_PIP_ARGS that is pip's own configuration: on the benchmark machine (bench/RESULTS.md) it
# points at a local wheel directory holding the CPU build, torch 2.13.0+cpu. From PyPI, Linux gets
# the CUDA build (several GB); for the CPU build there, pass PyTorch's index of CPU wheels:
#   make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=
# What `make run` and `make test` install: every extra and the development tools.
EXTRAS ?= all,dev
# What `make check-heavy` installs on top: the documentation and notebook tools.
HEAVY_EXTRAS ?= all,dev,docs,notebooks

.PHONY: run test check-heavy setup system-deps test-deps lint bench mutants clean

run: setup
	$(PY) -m streamlit run app.py --server.address 127.0.0.1 --server.headless true

test: setup test-deps
	$(PY) -m pytest -q -m "not heavy" --ignore=tests/heavy $(PYTEST_ARGS)

# The heavy tests build the wheel and sdist and install the wheel into a clean venv (torch first,
# with TORCH_SPEC and TORCH_PIP_ARGS as above, then resviz's core dependencies only).
check-heavy: setup $(VENV)/.installed-heavy
	RESVIZ_NO_SKIPS=1 TORCH_SPEC="$(TORCH_SPEC)" TORCH_PIP_ARGS="$(TORCH_PIP_ARGS)" \
	  $(PY) -m pytest -q -rs -m heavy tests/heavy $(PYTEST_ARGS)

$(VENV)/.installed-heavy: pyproject.toml $(VENV)/.installed
	$(PIP) install -e ".[$(HEAVY_EXTRAS)]" build
	@touch $@

setup: $(VENV)/.installed system-deps

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch first, from the index chosen above, so that installing resviz finds it and pulls no other build.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(PIP) install -e ".[$(EXTRAS)]"
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
	$(VENV)/bin/ruff check resviz tests bench scripts app.py
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

MUTANTS_ARGS ?=

# Sampled mutation testing, outside CI (9-13 min on 2 cores, bench/RESULTS.md): mutmut generates the mutants of
# the model, counting and tracing code; scripts/mutants.py runs a fixed-seed sample of 100 against
# the tests that cover them. Results in .mutants/ (summary.md); kill rates in bench/RESULTS.md.
mutants: setup
	$(PIP) install -q -e ".[mutation]"
	$(PY) scripts/mutants.py $(MUTANTS_ARGS)

bench: setup
	$(PY) bench/static_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .mutants
