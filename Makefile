# The two set-up commands of the README: `make install` and `make test`.
PYTHON ?= python3

.PHONY: install text-packages test test-slow test-all bench-data

# Natural English text for the embedded corpus (mmspeech_jax/data/english_text.py): Debian packages, installed with
# apt-get when their files are missing (as root, or through sudo).
TEXT_PACKAGES = wordnet-base fortunes
TEXT_FILES = /usr/share/wordnet/data.noun /usr/share/games/fortunes/fortunes

install: text-packages
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install -e ".[dev]"

text-packages:
	@missing=0; for f in $(TEXT_FILES); do [ -f "$$f" ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  command -v apt-get >/dev/null || { echo "install the Debian packages $(TEXT_PACKAGES) (or their files: $(TEXT_FILES))"; exit 1; }; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $(TEXT_PACKAGES); \
	fi

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
