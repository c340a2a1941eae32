# The README's commands. Each target sets up a virtualenv in the checkout if there is none.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK = 1
export MPLBACKEND = Agg

.PHONY: demo test bench setup clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is pinned to the local CPU build; an unpinned torch would pull CUDA wheels.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[test,torch,flower,dask]"
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

demo: $(STAMP)
	$(PY) -m ratedist.demo

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) figures/out .pytest_cache
