# Everything installs from this repository's pinned requirement files into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Test processes: two keep a 2-core machine busy (the suite is mostly single-threaded tracing);
# each holds up to ~7 GiB, so raise it only with the memory for it (make test TEST_WORKERS=4).
TEST_WORKERS ?= 2

.PHONY: demo test test-notebook tpu-venv clean

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

# The Colab notebook run the way Colab runs it (tests/notebook_in_fresh_runtime.py): a fresh venv,
# the notebook's own install cell (TensorFlow's TPU build: minutes of downloads), every other cell
# on CPU. Not part of `make test` for that reason.
test-notebook: $(INSTALLED)
	$(PY) -m pytest -p no:xdist tests/notebook_in_fresh_runtime.py

# TensorFlow's TPU build and the project's other pins without a second TensorFlow, for a Cloud TPU
# VM (docs/tpu.md). The notebook's install cell installs the same set (tests/test_colab_notebook.py).
TPU_VENV := .venv-tpu
TENSORFLOW_TPU := tensorflow-tpu==2.20.0 libtpu==0.0.14
# They require the `tensorflow` distribution, which would bring the CPU wheel over the TPU build.
NEED_TENSORFLOW := tensorflow-text|tensorflow-serving-api|tf-models-official

tpu-venv: requirements.txt
	$(PYTHON) -m venv $(TPU_VENV)
	$(TPU_VENV)/bin/python -m pip install --quiet $(TENSORFLOW_TPU) \
		$$(grep -E '^[A-Za-z0-9_.-]+==' requirements.txt | grep -vE '^(tensorflow|$(NEED_TENSORFLOW))==')
	$(TPU_VENV)/bin/python -m pip install --quiet --no-deps \
		$$(grep -E '^($(NEED_TENSORFLOW))==' requirements.txt)

clean:
	rm -rf runs .pytest_cache
