# The two commands of the README: `make demo` and `make test`.
# Both create .venv with python3.11 -m venv + pip (uv/poetry would ignore the
# local CPU torch wheel and download a multi-GB CUDA build) and install what they need.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo
DEMO_TRACKS ?= 600

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,dask,ffmpeg,train,eval,search,serve]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/musicrep demo --out $(DEMO_OUT) --tracks $(DEMO_TRACKS)

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/align_partition.py

clean:
	rm -rf $(VENV) runs .pytest_cache
