"""`sfp bench encoder-probe`: the leave-one-out probe, the scene targets, and a run end to end on
a small recorded-cell layout (bags/episodes.json + dataset/) with a real untrained policy."""

import json

import numpy as np
import pytest

from streaming_flow_ros.bench import encoder_probe as ep
from streaming_flow_ros.checkpoint import make_untrained_checkpoint
from streaming_flow_ros.cli import main as sfp_main
from streaming_flow_ros.spec import CameraSpec, IOSpec


def test_loo_ridge_reads_a_linear_code_back_and_not_noise():
    rng = np.random.default_rng(0)
    Y = rng.uniform(-0.1, 0.1, size=(60, 2))
    X = np.c_[Y @ rng.normal(size=(2, 6)), rng.normal(size=(60, 4)) * 0.01]  # a linear code of Y + clutter
    r2, err = ep.loo_ridge(X * 10.0, Y, lam=1e-6)
    assert r2 > 0.99 and err < 0.005
    r2, err = ep.loo_ridge(rng.normal(size=(60, 6)), Y)  # nothing about Y in X
    assert r2 < 0.2 and err > 0.05
    with pytest.raises(ValueError, match="at least 3"):
        ep.loo_ridge(X[:2], Y[:2])


def test_scene_targets_of_both_tasks():
    assert set(ep.scene_targets({"seed": 1, "cube_xy": [0.1, 0.2], "cube_yaw": 0.0})) == {"cube"}
    t = ep.scene_targets({"seed": 1, "red": [0.1, 0.0, 0.3], "green": [-0.1, 0.2, 0.0]})
    assert np.allclose(t["midpoint"], [0.0, 0.1]) and set(t) == {"red", "green", "midpoint"}
    with pytest.raises(ValueError, match="unknown scene"):
        ep.scene_targets({"seed": 1})


def _cell_run(root, n=8):
    """The layout `make cell-policy` leaves: bags/episodes.json and dataset/ (frames: a red square
    where the cube is)."""
    (root / "bags").mkdir(parents=True)
    (root / "dataset").mkdir()
    rng = np.random.default_rng(1)
    episodes, sources, names = [], [], []
    for i in range(n):
        xy = rng.uniform(-0.08, 0.08, size=2)
        episodes.append({"bag": f"episode_{i:05d}", "scene": {"seed": i, "cube_xy": xy.tolist(), "cube_yaw": 0.0}})
        img = np.zeros((3, 32, 32, 3), np.uint8)
        r, c = (16 + xy * 100).astype(int)
        img[:, r - 2:r + 2, c - 2:c + 2, 0] = 255
        np.savez(root / "dataset" / f"episode_{i:05d}.npz", image_scene=img, state=np.zeros((3, 2), np.float32))
        sources.append({"bag": str(root / "bags" / f"episode_{i:05d}"), "start_ns": 0, "samples": 3})
        names.append(f"episode_{i:05d}.npz")
    (root / "bags" / "episodes.json").write_text(json.dumps({"cell": "panda", "task": "lift", "episodes": episodes}))
    (root / "dataset" / "dataset.json").write_text(json.dumps({"episodes": names, "source": {"episodes": sources}}))
    return root


def test_probe_end_to_end_writes_the_documented_json(tmp_path, capsys):
    run_dir = _cell_run(tmp_path / "run")
    spec = IOSpec(("j1", "j2"), ("j1", "j2"), (CameraSpec("scene", 32, 32, 3),), 10.0)
    ckpt = make_untrained_checkpoint(tmp_path / "p.safetensors", spec)
    out = tmp_path / "probe.json"
    assert sfp_main(["bench", "encoder-probe", "--case", f"untrained={ckpt},{run_dir}", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    case = doc["cases"][0]
    assert case["label"] == "untrained" and case["episodes"] == 8 and case["task"] == "lift"
    probe = case["cameras"]["scene"]["targets"]["cube"]
    assert np.isfinite(probe["r2"]) and probe["error_mm"] >= 0.0
    assert "| untrained (8 episodes) | scene |" in capsys.readouterr().out
    assert "untrained" in ep.render(doc)


def test_probe_refuses_a_dataset_of_other_bags(tmp_path):
    run_dir = _cell_run(tmp_path / "run", n=4)
    meta = json.loads((run_dir / "bags" / "episodes.json").read_text())
    meta["episodes"] = meta["episodes"][1:]
    (run_dir / "bags" / "episodes.json").write_text(json.dumps(meta))
    spec = IOSpec(("j1", "j2"), ("j1", "j2"), (CameraSpec("scene", 32, 32, 3),), 10.0)
    ckpt = make_untrained_checkpoint(tmp_path / "p.safetensors", spec)
    with pytest.raises(ValueError, match="not the recorded bags"):
        ep.probe("x", ckpt, run_dir)
    with pytest.raises(ValueError, match="LABEL=CHECKPOINT,RUN_DIR"):
        ep.parse_case("no-checkpoint")
