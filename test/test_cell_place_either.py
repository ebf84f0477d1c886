"""PlaceEither on the MuJoCo cells (cells/tasks.py, cells/expert.py, cells/record.py): Lift's
cube and two place pads on the table; success is the cube, once lifted, resting released on
either pad; the scripted expert carries it to one of them, chosen 50/50 per seed, so its
demonstrations are multimodal after the grasp. Also: the pads stay parked out of view (and out
of the model's extent) in the other tasks. Skips without mujoco or robosuite's model files."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported: offscreen, headless
pytest.importorskip("mujoco")
if importlib.util.find_spec("robosuite") is None:
    pytest.skip("robosuite's model files are not installed", allow_module_level=True)

from streaming_flow_ros.cells import scene as sc
from streaming_flow_ros.cells.cell import Cell
from streaming_flow_ros.cells.expert import LiftExpert, expert_cube, expert_pad, make_expert, run_expert_episode
from streaming_flow_ros.cells.robots import robot_spec
from streaming_flow_ros.cells.tasks import LiftTask, PickEitherTask, PlaceEitherConfig, PlaceEitherTask, make_task
from streaming_flow_ros.sim.jtc import JointTrajectory, TrajectoryPoint

# Seeds whose expert pad is known (test_expert_pad_is_a_fair_seeded_coin pins them).
LEFT_SEEDS, RIGHT_SEEDS = (1, 2), (0, 5)


def _blue_pixels(img: np.ndarray) -> int:
    r, g, b = (img[..., k].astype(int) for k in range(3))
    return int(((b > r + 80) & (b > g + 60)).sum())


def test_scene_is_lifts_cube_plus_the_pads(cells):
    task = PlaceEitherTask()
    for seed in range(10):
        s, lift = task.scene(seed), LiftTask().scene(seed)
        assert (s.cube_xy, s.cube_yaw) == (lift.cube_xy, lift.cube_yaw) and s.pads == ("left", "right")
        assert s.cubes == ("red",) and s.to_dict() == lift.to_dict()
    cell = cells("panda")
    task.reset(cell, 3)
    assert cell.pads_on_table == ("left", "right") and cell.cubes_on_table == ("red",)
    for camera in cell.camera_names:
        assert _blue_pixels(cell.render(camera, size=(96, 96))[1]) > 30, camera
    cell.step(1.0)
    assert not task.update(cell)
    out = task.outcome()  # the cube within 8 cm of the centre, the pads' inner edges 17 cm out
    assert out["object"] is None and out["miss"] == "not lifted" and out["pad_gap_mm"] > 80
    for other in (LiftTask(), PickEitherTask()):  # the pads are parked under the table
        other.reset(cell, 3)
        assert cell.pads_on_table == ()
        for camera in cell.camera_names:
            assert _blue_pixels(cell.render(camera, size=(96, 96))[1]) == 0, (other.name, camera)


def test_parked_pads_leave_the_model_extent():
    """As the parked cube (test_cell_pick_either.py): Lift's images must not change."""
    spec = sc.build_spec(robot_spec("panda"))
    full = spec.compile()
    for name in sc.PADS:
        spec.delete(spec.geom(sc.pad_name(name)))
    bare = spec.compile()
    assert full.stat.extent == bare.stat.extent
    np.testing.assert_array_equal(full.stat.center, bare.stat.center)


def test_expert_pad_is_a_fair_seeded_coin():
    task = PlaceEitherTask()
    pads = [expert_pad(task.scene(s)) for s in range(200)]
    assert pads == [expert_pad(task.scene(s)) for s in range(200)]  # deterministic
    assert 80 <= pads.count("left") <= 120 and set(pads) == {"left", "right"}
    assert [pads[s] for s in LEFT_SEEDS] == ["left"] * 2 and [pads[s] for s in RIGHT_SEEDS] == ["right"] * 2
    assert {expert_cube(task.scene(s)) for s in range(20)} == {"red"}
    assert expert_pad(LiftTask().scene(0)) is None and expert_pad(PickEitherTask().scene(0)) is None


@pytest.mark.parametrize("robot", ["panda", "ur5e", "gen3", "xarm7"])
def test_expert_places_the_cube_on_its_pad(cells, robot):
    cell, task = cells(robot), PlaceEitherTask()
    for seed in (LEFT_SEEDS[0], RIGHT_SEEDS[0]):
        out = run_expert_episode(cell, task, seed)
        assert out["success"] and out["lifted_object"] == out["object"] == expert_pad(task.scene(seed))
        assert out["max_cube_height"] > 0.1 and not out["table_contact"]
        np.testing.assert_allclose(cell.cube_position("red")[:2], sc.PADS[out["object"]], atol=0.02)
        assert cell.gripper_width() > task.config.release_width


def _drive(cell: Cell, task, expert: LiftExpert, gripper=None, until: float | None = None) -> None:
    """Run ``expert`` (10 Hz commands) to its end or to ``until`` s, the gripper width from
    ``gripper(t, width)``."""
    t0, period = cell.time, expert.command_period
    end = expert.done_time + 0.5 if until is None else until
    for k in range(round(end / period)):
        q, width = expert.command_at(cell.time - t0)
        cell.command_trajectory(JointTrajectory(cell.joint_names, (TrajectoryPoint(q.tolist(), period),)))
        cell.command_gripper(width if gripper is None else gripper(cell.time - t0, width))
        while cell.time < t0 + (k + 1) * period - 1e-6:
            cell.step(0.01)
            task.update(cell)


def test_placed_means_lifted_released_and_on_a_pad(cells):
    """No success for a cube held on the pad (gripper never opened), for one set on a pad
    without a lift, or for one put down off the pads; success on the expert's own run."""
    cell, task = cells("panda"), PlaceEitherTask()
    scene = task.reset(cell, LEFT_SEEDS[0])
    expert = make_expert(cell, scene)
    assert expert.mode == expert.place == "left" and expert.cube == "red"
    _drive(cell, task, expert, gripper=lambda t, w: 0.0 if t >= expert.plan.close_time else w,
           until=expert.plan.phases["retreat"])  # on the pad, closed, for release_s > hold_s
    assert not task.success and task.lifted and cell.metrics().cube_height < task.config.place_height
    assert task.pad_under(cell.cube_position("red")[:2]) == "left"
    assert task.outcome() == {"object": None, "miss": "not released", "pad_gap_mm": 0.0}
    task.reset(cell, 0)
    cell.reset(cube_xy=sc.PADS["right"], pads=True)  # on the pad from the start: never lifted
    cell.step(1.5)
    assert not task.update(cell) and not task.lifted
    assert task.outcome() == {"object": None, "miss": "not lifted", "pad_gap_mm": 0.0}
    # put down in the middle of the table (no pad there)
    scene = task.reset(cell, LEFT_SEEDS[1])
    expert = make_expert(cell, scene)
    assert task.pad_under((0.0, 0.0)) is None
    _drive(cell, task, expert)
    assert task.success and task.lifted_object == "left"
    assert task.outcome() == {"object": "left", "miss": None, "pad_gap_mm": 0.0}


def test_a_miss_says_why_and_how_far_from_a_pad(cells):
    """``outcome()["miss"]`` of a failed episode, from where it stopped: the cube still carried
    ("held") or dropped on the way ("off pad"), with the cube's distance from the nearest pad;
    ``summarize`` counts the reasons."""
    from streaming_flow_ros.ros.cell_loop import CellEpisode, summarize

    cell, task = cells("panda"), PlaceEitherTask()
    scene = task.reset(cell, RIGHT_SEEDS[0])
    expert = make_expert(cell, scene)
    mid = expert.plan.phases["transport"] + 0.5
    _drive(cell, task, expert, until=mid)  # carried at lift height, half way to the pad
    held = task.outcome()
    xy = cell.cube_position("red")[:2]
    assert held["miss"] == "held" and held["object"] is None
    assert held["pad_gap_mm"] == pytest.approx(task.pad_gap(xy)[1] * 1000, abs=0.1) and held["pad_gap_mm"] > 20
    task.reset(cell, RIGHT_SEEDS[0])
    _drive(cell, task, make_expert(cell, scene), gripper=lambda t, w: 0.08 if t >= mid else w, until=mid + 1.5)
    dropped = task.outcome()  # let go half way: the cube falls between the start and the pad
    assert dropped["miss"] == "off pad" and dropped["pad_gap_mm"] > 20 and task.lifted
    assert task.pad_gap(sc.PADS["left"]) == ("left", 0.0)
    assert task.pad_gap((sc.PADS["right"][0], sc.PADS["right"][1] + sc.PAD_HALF + 0.03))[1] == pytest.approx(0.03)
    runs = [CellEpisode(episode=i, seed=i, success=False, collision=False, time_to_success=None, duration=20.0,
                        max_cube_height=0.15, jerk_rms=1.0, gripper_between=0.0, gripper_switches=2, outcome=o)
            for i, o in enumerate((held, dropped, dropped))]
    s = summarize(runs, {"ticks": 1, "ticks_expected": 1})
    assert s["misses"] == {"held": 1, "off pad": 2} and s["modes"] == {}
    # the episode line of `sfp eval cell` and `sfp demo`
    from streaming_flow_ros.apps.eval_cell import verdict

    gap = f"{dropped['pad_gap_mm']:.0f} mm from a pad"
    assert verdict("place_either", runs[1]) == f"did not place it (off pad, {gap}, peak 15.0 cm)"
    over = dataclasses.replace(runs[0], outcome={**held, "pad_gap_mm": 0.0})  # held over a pad: no distance
    assert verdict("place_either", over) == "did not place it (held, peak 15.0 cm)"
    placed = dataclasses.replace(runs[0], success=True, time_to_success=8.25, outcome={"object": "left", "miss": None})
    assert verdict("place_either", placed) == "placed the cube on the left pad in 8.2 s"
    lift = dataclasses.replace(runs[0], outcome={"object": None}, max_cube_height=0.004)
    assert verdict("lift", lift) == "did not lift it (peak 0.4 cm)"
    assert verdict("pick_either", dataclasses.replace(placed, outcome={"object": "green"})) == \
        "lifted the green cube in 8.2 s"
    assert PlaceEitherTask().pad_under((sc.PADS["right"][0] + sc.PAD_HALF - 1e-3, sc.PADS["right"][1])) == "right"


def test_config_checks_and_registry(cells):
    from streaming_flow_ros.sim.record import CELL_TASKS

    assert "place_either" in CELL_TASKS and make_task("place_either").name == "place_either"
    assert make_task("place_either", hold_s=0.2).config.hold_s == 0.2
    with pytest.raises(ValueError, match="place_height"):
        PlaceEitherConfig(place_height=0.06)  # above lift_height: holding it up would count
    with pytest.raises(ValueError, match="pad"):
        cell = cells("panda")
        LiftTask().reset(cell, 0)
        LiftExpert(cell, place="left")  # Lift's reset: no pads


def test_record_place_either_lists_the_chosen_pad(tmp_path):
    from streaming_flow_ros.cli import main as sfp_main
    from streaming_flow_ros.data.bags import read_messages

    out = tmp_path / "bags"
    assert sfp_main(["dataset", "record-sim", "--cell", "panda", "--task", "place_either", "--episodes", "2",
                     "--out", str(out), "--seed", str(RIGHT_SEEDS[0]), "--image-size", "32", "24"]) == 0
    index = json.loads((out / "episodes.json").read_text())
    assert index["task"] == "place_either" and index["objects"] == {"left": 1, "right": 1}
    assert [e["object"] for e in index["episodes"]] == ["right", "left"]  # seeds 0, 1
    for e in index["episodes"]:
        assert e["success"] and e["lifted_object"] == e["object"] and e["duration_s"] > 9.0
    gripper = [m for m in read_messages(out / "episode_00000") if m.topic == "/gripper_controller/commands"]
    widths = np.array([float(m.msg.data[0]) for m in gripper])  # open, closed, open again
    assert widths[0] > 0.03 and widths.min() < 0.005 and widths[-1] > 0.03
