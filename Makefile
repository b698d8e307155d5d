# The two set-up commands of the README: `make install` and `make test`.
PYTHON ?= python3

.PHONY: install test test-slow test-all bench-data

install:
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install -e ".[dev]"

# Fast suite (< ~15 min on 2 cores); heavier tests carry the `slow` marker.
test:
	$(PYTHON) -m pytest -m "not slow" -q

test-slow:
	$(PYTHON) -m pytest -m "slow" -q

test-all:
	$(PYTHON) -m pytest -q

bench-data:
	$(PYTHON) -m benchmarks.data_pipeline
