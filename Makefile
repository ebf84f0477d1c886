# Two commands do all the set-up on a fresh machine:
#   make demo   -- creates .venv, installs pinned deps, runs the policy node on the simulated arm
#   make test   -- creates .venv, installs pinned deps, runs the test suite
#   make test-py310 -- Python 3.10 (ROS 2 Humble's): creates .venv-py310 without torch or rclpy,
#                      imports every module that needs neither and runs the tests that need neither
# Everything else is a convenience around the `sfp` command installed into .venv.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Python 3.10 from pyenv (override: make test-py310 PY310=/usr/bin/python3.10)
PY310      ?= $(HOME)/.pyenv/versions/3.10.13/bin/python
VENV310    ?= .venv-py310
STAMP310   := $(VENV310)/.installed

.PHONY: venv demo test test-py310 lint toy eval default-policy clean

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
	$(PY) -m pytest -q -rfEsR --reruns 1 test

# requirements-py310.txt: no torch (for 3.10 only the multi-GB CUDA build exists) and no rclpy.
$(STAMP310): requirements-py310.txt setup.py package.xml
	@test -x "$(PY310)" || { echo "no Python 3.10 at $(PY310): make test-py310 PY310=/path/to/python3.10"; exit 1; }
	rm -rf $(VENV310)
	$(PY310) -m venv $(VENV310)
	$(VENV310)/bin/python -m pip install --quiet -r requirements-py310.txt
	$(VENV310)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP310)

test-py310: $(STAMP310)
	$(VENV310)/bin/python test/py310_check.py

toy: $(STAMP)
	$(VENV)/bin/sfp toy

# Closed-loop success rate of the default policy through the real node (README number).
eval: $(STAMP)
	$(VENV)/bin/sfp eval sim --episodes 50 --json runs/eval_default.json

# Regenerates streaming_flow_ros/assets/default_policy.safetensors through the same pipeline a
# user runs on their own bags: expert demos recorded as rosbag2 (MCAP) -> sfp dataset build ->
# sfp train. ~20 min on 2 CPU cores (1 min recording, 16 min training).
DEFAULT_RUN := runs/default_policy
default-policy: $(STAMP)
	$(VENV)/bin/sfp dataset record-sim --episodes 300 --seed 1 --out $(DEFAULT_RUN)/bags --compress
	$(VENV)/bin/sfp dataset build $(DEFAULT_RUN)/bags/episode_* --out $(DEFAULT_RUN)/dataset --overwrite \
	    --joint-topic /joint_states --camera-topic camera=/camera/image_raw --rate 10 \
	    --action-source command --action-topic /joint_trajectory_controller/joint_trajectory \
	    --joints joint1,joint2,joint3 --action-lower=-2.6,-2.7,-2.7 --action-upper=2.6,2.7,2.7
	$(VENV)/bin/sfp train --dataset $(DEFAULT_RUN)/dataset --out $(DEFAULT_RUN)/train \
	    --config config/train/sim.yaml --no-resume --no-progress
	mkdir -p streaming_flow_ros/assets
	cp $(DEFAULT_RUN)/train/policy.safetensors streaming_flow_ros/assets/default_policy.safetensors

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff==0.17.6
	$(VENV)/bin/ruff check streaming_flow_ros test

clean:
	rm -rf $(VENV) $(VENV310) build *.egg-info
