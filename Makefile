# Everything installs from this repository's pinned requirement files into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Test processes: two keep a 2-core machine busy (the suite is mostly single-threaded tracing);
# each holds up to ~7 GiB, so raise it only with the memory for it (make test TEST_WORKERS=4).
TEST_WORKERS ?= 2

.PHONY: demo test clean

$(INSTALLED): requirements.txt requirements-test.txt requirements-oracles.txt requirements-experiments.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-test.txt -r requirements-oracles.txt -r requirements-experiments.txt
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(PY) -m electra_tf.demo

test: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf runs .pytest_cache
