# The two set-up commands of the README: `make install` and `make test`.
PYTHON ?= python3

.PHONY: install test test-slow test-all bench-data

install:
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install -e ".[dev]"

# Fast suite (< ~15 min on 2 cores); heavier tests carry the `slow` marker. Two pytest-xdist workers, one test
# file each at a time (module fixtures stay in one worker): XLA compiles on one core, so two workers keep both busy.
XDIST = -n 2 --dist loadfile

test:
	$(PYTHON) -m pytest -m "not slow" -q $(XDIST)

test-slow:
	$(PYTHON) -m pytest -m "slow" -q $(XDIST)

test-all:
	$(PYTHON) -m pytest -q $(XDIST)

bench-data:
	$(PYTHON) -m benchmarks.data_pipeline
