# Two commands do all the set-up on a fresh machine:
#   make demo   -- creates .venv, installs pinned deps, runs the policy node on the simulated arm
#   make test   -- creates .venv, installs pinned deps, runs the test suite
# Everything else is a convenience around the `sfp` command installed into .venv.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-fast lint bench toy clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.py package.xml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sfp demo

test: $(STAMP)
	$(PY) -m pytest -q test

toy: $(STAMP)
	$(VENV)/bin/sfp toy

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff==0.17.6
	$(VENV)/bin/ruff check streaming_flow_ros test

clean:
	rm -rf $(VENV) build *.egg-info
