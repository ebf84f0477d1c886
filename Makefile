# Two commands do all the set-up on a fresh machine:
#   make demo   -- creates .venv, installs pinned deps, streams the shipped Lift policy through the
#                  policy node to a simulated Franka (MuJoCo, ros2_control topics) that picks up a cube
#   make test   -- creates .venv, installs pinned deps, runs the test suite
#   make test-py310 -- Python 3.10 (ROS 2 Humble's): creates .venv-py310 without torch or rclpy,
#                      imports every module that needs neither and runs the tests that need neither
#   make test-jazzy -- ROS 2 Jazzy (LTS): creates .venv-jazzy with the Jazzy rclpy/message wheels,
#                      runs the ROS-facing tests (node, lifecycle, replay, closed loop) against them
# Everything else is a convenience around the `sfp` command installed into .venv.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Python 3.10 from pyenv (override: make test-py310 PY310=/usr/bin/python3.10)
PY310      ?= $(HOME)/.pyenv/versions/3.10.13/bin/python
VENV310    ?= .venv-py310
STAMP310   := $(VENV310)/.installed
# ROS 2 Jazzy lane: its own venv, the Jazzy and Kilted wheels share distribution names (ros-rclpy...)
PY311      ?= python3.11
VENVJAZZY  ?= .venv-jazzy
STAMPJAZZY := $(VENVJAZZY)/.installed
# The ROS-facing tests: node contract, lifecycle, remaps, enable, joint-state merge, bag replay
# into the node and bag playback, one closed-loop episode, sim nodes, the control loop, params,
# conversions, launch (skips: no launch_ros wheel), the executor choice. ~1.5 min.
JAZZY_TESTS ?= test/test_node.py test/test_reliability_merge.py test/test_bag_replay_node.py \
	test/test_play.py test/test_apps.py::test_closed_loop_episode_streams_through_the_node \
	test/test_sim_nodes.py test/test_control.py test/test_params.py test/test_conversions.py \
	test/test_launch.py test/test_runner.py
# ros-wheels-bootstrapper re-execs Python once with LD_LIBRARY_PATH pointing at its own venv and
# marks that in the environment; a Jazzy Python started from a Kilted-venv process would inherit
# both and load (or fail to find) the wrong libraries. Start the lane without them.
JAZZY_ENV  := env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE -u LD_LIBRARY_PATH

.PHONY: venv demo test test-py310 test-jazzy lint toy eval default-policy cell-policy eval-cell clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-cells.txt setup.py package.xml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# the MuJoCo cells' arm and gripper models (files only: robosuite's own deps are not used)
	$(PY) -m pip install --quiet --no-deps -r requirements-cells.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sfp demo

# Two workers, one test file each at a time (module fixtures built once; a file's tests keep their
# order): the suite takes ~7 min instead of ~10 on 2 busy cores. TEST_WORKERS=0 runs it serially.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -rfEsR --reruns 1 $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) test

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

# requirements-jazzy.txt (ROS pins) + every non-ROS line of requirements.txt (same torch, numpy,
# pytest... as `make test`); pip check fails the install on a mixed Kilted/Jazzy set.
$(STAMPJAZZY): requirements-jazzy.txt requirements.txt setup.py package.xml
	rm -rf $(VENVJAZZY)
	$(PY311) -m venv $(VENVJAZZY)
	$(JAZZY_ENV) $(VENVJAZZY)/bin/python -m pip install --quiet --upgrade pip
	sed '/^ros-/d' requirements.txt > $(VENVJAZZY)/requirements-nonros.txt
	$(JAZZY_ENV) $(VENVJAZZY)/bin/python -m pip install --quiet \
	    -r $(VENVJAZZY)/requirements-nonros.txt -r requirements-jazzy.txt
	$(JAZZY_ENV) $(VENVJAZZY)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(JAZZY_ENV) $(VENVJAZZY)/bin/python -m pip check
	touch $(STAMPJAZZY)

test-jazzy: $(STAMPJAZZY)
	@$(JAZZY_ENV) $(VENVJAZZY)/bin/python -c "import importlib.metadata as m, rclpy; \
	    print('ROS 2 Jazzy lane: ros-rclpy', m.version('ros-rclpy'), 'from', rclpy.__file__)"
	@echo "tests: $(JAZZY_TESTS)"
	$(JAZZY_ENV) PYTHONPATH=test $(VENVJAZZY)/bin/python -m pytest \
	    -q -rfEsR --reruns 1 $(JAZZY_TESTS)

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

# Regenerates streaming_flow_ros/assets/<robot>_<task>.safetensors (ROBOT=panda|ur5e|gen3|xarm7,
# TASK=lift|place_either) the way a user would from their own arm: 100 scripted-expert demos (UR5e: 200)
# recorded as rosbag2 through the cell's topics -> sfp dataset build -> sfp train
# (config/train/cell_lift.yaml, for place_either too; UR5e below) -> sfp compact (float16
# weights, 2.7 MB). ~5-7 min recording and ~20-30 min training on 2 idle CPU cores (place_either:
# 46-58 min on one thread beside another job, below).
# panda_lift, panda_place_either and ur5e_lift are committed; make cell-policy writes the others next to it.
# place_either: the 6,000 steps are then resumed to a 12,000-step schedule (the learning rate
# warms back up to half): its episodes last twice Lift's, and at 6,000 steps the policy is
# still undertrained (docs/BENCHMARKS.md, place either). About twice the training time.
ROBOT ?= panda
TASK ?= lift
CELL_RUN := runs/cells/$(ROBOT)_$(TASK)
CELL_TOPICS_panda := --joint-topic /franka/joint_states --action-topic /fr3_arm_controller/joint_trajectory \
	--action-topic /gripper_controller/commands=fr3_finger_joint1
CELL_TOPICS_ur5e := --joint-topic /joint_states --action-topic /scaled_joint_trajectory_controller/joint_trajectory \
	--action-topic /gripper_controller/commands=robotiq_85_left_knuckle_joint
CELL_TOPICS_gen3 := --joint-topic /joint_states --action-topic /joint_trajectory_controller/joint_trajectory \
	--action-topic /gripper_controller/commands=robotiq_85_left_knuckle_joint
CELL_TOPICS_xarm7 := --joint-topic /joint_states --action-topic /xarm7_traj_controller/joint_trajectory \
	--action-topic /gripper_controller/commands=drive_joint
# UR5e: the expert turns the hand above the cube, the encoder keeps 22x22 keypoint maps, and it
# takes 200 demos and 8,000 steps; with the Panda's recipe its policy does not turn the hand with
# the cube (docs/BENCHMARKS.md, cells). ~10 min recording, ~35 min training on one thread.
CELL_RECORD_ur5e := --turn-above 1.0
CELL_EPISODES_ur5e := 200
CELL_CONFIG_ur5e := config/train/cell_lift_fine.yaml
CELL_STEPS_ur5e := --steps 8000
CELL_CONFIG = $(or $(CELL_CONFIG_$(ROBOT)),config/train/cell_lift.yaml)
CELL_EPISODES = $(or $(CELL_EPISODES_$(ROBOT)),100)
CELL_EXTEND_place_either := 12000
cell-policy: $(STAMP)
	$(VENV)/bin/sfp dataset record-sim --cell $(ROBOT) --task $(TASK) --episodes $(CELL_EPISODES) --out $(CELL_RUN)/bags --compress \
	    $(CELL_RECORD_$(ROBOT))
	$(VENV)/bin/sfp dataset build $(CELL_RUN)/bags/episode_* --out $(CELL_RUN)/dataset --overwrite \
	    $(CELL_TOPICS_$(ROBOT)) --camera-topic scene=/camera/image_raw --camera-topic wrist=/wrist_camera/image_raw \
	    --rate 10 --action-source command
	$(VENV)/bin/sfp train --dataset $(CELL_RUN)/dataset --out $(CELL_RUN)/sfp --config $(CELL_CONFIG) \
	    $(CELL_STEPS_$(ROBOT)) --no-resume --no-progress
	$(if $(CELL_EXTEND_$(TASK)),$(VENV)/bin/sfp train --dataset $(CELL_RUN)/dataset --out $(CELL_RUN)/sfp \
	    --config $(CELL_CONFIG) --steps $(CELL_EXTEND_$(TASK)) --no-progress)
	$(VENV)/bin/sfp compact $(CELL_RUN)/sfp/policy.safetensors streaming_flow_ros/assets/$(ROBOT)_$(TASK).safetensors

# Success of the policy in assets/ through the node (panda lift as shipped; others after
# make cell-policy with the same ROBOT and TASK).
eval-cell: $(STAMP)
	$(VENV)/bin/sfp eval cell --robot $(ROBOT) --task $(TASK) --episodes 20 --json runs/cells/eval_$(ROBOT)_$(TASK).json

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff==0.17.6
	$(VENV)/bin/ruff check streaming_flow_ros test

clean:
	rm -rf $(VENV) $(VENV310) $(VENVJAZZY) build *.egg-info
