# Set-up and the two main jobs. `make bench` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup bench test lint clean

setup: $(STAMP)

# constraints.txt pins torch to the CPU build; pyproject.toml keeps the user-facing range.
$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,openvino,analysis,loadgen,hf,iree,ray]'
	touch $(STAMP)

bench: $(STAMP)
	$(VENV)/bin/portable bench --backend cpu

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
