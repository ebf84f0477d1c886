"""PickEither on the MuJoCo cells (cells/tasks.py, cells/expert.py, cells/record.py): two cubes,
red and green, placed from the seed; success is either cube lifted; the scripted expert lifts
one of them, chosen 50/50 per seed, so its demonstrations are multimodal. Also: Lift's second
cube stays parked out of view. Skips without mujoco or robosuite's model files."""

from __future__ import annotations

import importlib.util
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported: offscreen, headless
pytest.importorskip("mujoco")
if importlib.util.find_spec("robosuite") is None:
    pytest.skip("robosuite's model files are not installed", allow_module_level=True)

from streaming_flow_ros.cells import scene as sc
from streaming_flow_ros.cells.expert import expert_cube, run_expert_episode
from streaming_flow_ros.cells.robots import robot_spec
from streaming_flow_ros.cells.tasks import TASKS, LiftTask, PickEitherConfig, PickEitherTask, make_task

# Seeds whose expert choice is known (test_expert_choice_is_a_fair_seeded_coin pins them).
RED_SEEDS, GREEN_SEEDS = (2, 3), (0, 1)


def _colour_pixels(img: np.ndarray) -> dict[str, int]:
    """Pixels that look like the red / the green cube (the table is brown, the arm grey/black)."""
    r, g, b = (img[..., k].astype(int) for k in range(3))
    return {"red": int(((r > g + 60) & (r > b + 60)).sum()), "green": int(((g > r + 60) & (g > b + 60)).sum())}


def test_scenes_are_seeded_apart_and_on_the_table(cells):
    task = PickEitherTask()
    c = task.config
    scenes = [task.scene(s) for s in range(50)]
    assert scenes == [task.scene(s) for s in range(50)]  # deterministic per seed
    assert len({(s.red, s.green) for s in scenes}) == 50
    for s in scenes:
        for x, y, yaw in (s.red, s.green):
            assert c.cube_x[0] <= x <= c.cube_x[1] and c.cube_y[0] <= y <= c.cube_y[1]
            assert c.cube_yaw[0] <= yaw <= c.cube_yaw[1]
            assert abs(x) + sc.CUBE_HALF * np.sqrt(2) < sc.TABLE_HALF[0] and abs(y) + sc.CUBE_HALF * np.sqrt(2) < sc.TABLE_HALF[1]
        assert np.hypot(s.red[0] - s.green[0], s.red[1] - s.green[1]) >= c.min_separation
    assert s.to_dict() == {"seed": 49, "red": s.red, "green": s.green} and s.cubes == ("red", "green")
    cell = cells("panda")
    task.reset(cell, 7)
    cell.step(0.3)
    m = cell.metrics()
    assert cell.cubes_on_table == ("red", "green") and set(m.cube_heights) == {"red", "green"}
    assert all(abs(h) < 0.003 for h in m.cube_heights.values()) and not task.update(cell)
    for colour in ("red", "green"):
        np.testing.assert_allclose(cell.cube_position(colour)[:2], getattr(task.scene(7), colour)[:2], atol=1e-3)
    assert task.outcome() == {"object": None} and task.lifted_object is None


def test_cameras_tell_the_cubes_apart_and_lift_shows_one(cells):
    """PickEither: the scene camera sees a red and a green cube. Lift: the green cube is parked
    under the table, in neither camera nor the measurements."""
    cell = cells("ur5e")
    PickEitherTask().reset(cell, 5)
    seen = _colour_pixels(cell.render("scene", size=(96, 96))[1])
    assert seen["red"] > 5 and seen["green"] > 5
    LiftTask().reset(cell, 5)
    assert cell.cubes_on_table == ("red",) and set(cell.metrics().cube_heights) == {"red"}
    assert cell.cube_position("green")[2] < sc.TABLE_TOP - 0.5  # on the floor
    for camera in cell.camera_names:
        seen = _colour_pixels(cell.render(camera, size=(96, 96))[1])
        assert seen["green"] == 0, camera
    assert _colour_pixels(cell.render("scene", size=(96, 96))[1])["red"] > 5


def test_parked_cube_leaves_the_model_extent():
    """The cameras' near clipping plane is a fraction of the model's extent: the parked cube's
    model place must not grow it, or Lift's wrist images change (the gripper gets clipped)."""
    spec = sc.build_spec(robot_spec("ur5e"))
    full = spec.compile()
    spec.delete(spec.body(sc.cube_name("green")))
    one = spec.compile()
    assert full.stat.extent == one.stat.extent
    np.testing.assert_array_equal(full.stat.center, one.stat.center)


def test_success_on_either_cube():
    """The success test per cube (cell metrics faked): held above lift_height for hold_s;
    a dip restarts that cube's timer; the first cube to complete its hold is the lifted one."""

    def run(track: list[tuple[float, float, float]]) -> PickEitherTask:
        """A fresh task (lift_height 0.05 m, hold_s 0.5 s) fed (time s, red m, green m)."""
        task = PickEitherTask()
        for t, red, green in track:
            task.update(SimpleNamespace(metrics=lambda t=t, r=red, g=green: SimpleNamespace(
                time=t, cube_heights={"red": r, "green": g})))
        return task

    green = run([(t, 0.0, 0.06) for t in np.arange(0, 0.61, 0.01)])
    assert green.success and green.lifted_object == "green" and green.outcome() == {"object": "green"}
    assert green.max_height == 0.06
    assert run([(t, 0.06, 0.0) for t in np.arange(0, 0.61, 0.01)]).lifted_object == "red"
    dip = [(t, 0.0, 0.0 if abs(t - 0.3) < 1e-9 else 0.06) for t in np.arange(0, 0.71, 0.01)]
    dipped = run(dip)
    assert not dipped.success and dipped.lifted_object is None and dipped.outcome() == {"object": None}
    assert run(dip + [(0.85, 0.0, 0.06)]).lifted_object == "green"  # held from 0.31 s
    both = [(t, 0.06 if t >= 0.1 else 0.0, 0.06) for t in np.arange(0, 0.71, 0.01)]
    assert run(both).lifted_object == "green"  # green rose first; red's later hold changes nothing


def test_expert_choice_is_a_fair_seeded_coin():
    task = PickEitherTask()
    choices = [expert_cube(task.scene(s)) for s in range(200)]
    assert choices == [expert_cube(task.scene(s)) for s in range(200)]  # deterministic
    assert 7 <= choices[:20].count("green") <= 13 and 80 <= choices.count("green") <= 120
    assert [choices[s] for s in RED_SEEDS] == ["red"] * 2 and [choices[s] for s in GREEN_SEEDS] == ["green"] * 2
    assert {expert_cube(LiftTask().scene(s)) for s in range(20)} == {"red"}


@pytest.mark.parametrize("robot", ["panda", "ur5e"])
@pytest.mark.parametrize("seed", [RED_SEEDS[0], GREEN_SEEDS[0], GREEN_SEEDS[1]])
def test_expert_lifts_its_cube_and_leaves_the_other(cells, robot, seed):
    cell, task = cells(robot), PickEitherTask()
    scene = task.scene(seed)
    out = run_expert_episode(cell, task, seed)
    other = "green" if out["object"] == "red" else "red"
    assert out["success"] and out["lifted_object"] == out["object"] == expert_cube(scene)
    assert out["max_cube_height"] > 0.1 and not out["table_contact"]
    np.testing.assert_allclose(cell.cube_position(other)[:2], getattr(scene, other)[:2], atol=2e-3)
    assert cell.metrics().cube_heights[other] < 0.003


def test_task_registry_and_config_checks():
    from streaming_flow_ros.sim.record import CELL_TASKS

    assert CELL_TASKS == tuple(TASKS) and make_task("pick_either").name == "pick_either"
    assert make_task("pick_either", min_separation=0.12).config.min_separation == 0.12
    assert isinstance(make_task("lift").config, type(LiftTask().config))
    with pytest.raises(ValueError, match="min_separation"):
        PickEitherConfig(min_separation=0.3)  # no room on the default area
    with pytest.raises(ValueError, match="min_separation"):
        PickEitherConfig(min_separation=0.05)  # the cubes could overlap


def test_record_pick_either_lists_the_chosen_cube(tmp_path):
    from streaming_flow_ros.cli import main as sfp_main
    from streaming_flow_ros.data.bags import read_messages

    out = tmp_path / "bags"
    assert sfp_main(["dataset", "record-sim", "--cell", "panda", "--task", "pick_either", "--episodes", "2",
                     "--out", str(out), "--seed", str(GREEN_SEEDS[1]), "--image-size", "32", "24"]) == 0
    index = json.loads((out / "episodes.json").read_text())
    assert index["task"] == "pick_either" and index["objects"] == {"red": 1, "green": 1}
    assert [e["object"] for e in index["episodes"]] == ["green", "red"]  # seeds 1, 2
    for e in index["episodes"]:
        assert e["success"] and e["lifted_object"] == e["object"] and set(e["scene"]) == {"seed", "red", "green"}
    topics = {m.topic for m in read_messages(out / "episode_00000")}
    assert topics == {"/franka/joint_states", "/camera/image_raw", "/wrist_camera/image_raw",
                      "/fr3_arm_controller/joint_trajectory", "/gripper_controller/commands", "/clock"}
