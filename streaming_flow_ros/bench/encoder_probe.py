"""`sfp bench encoder-probe`: does a trained policy's image encoder see where the objects are?

For a MuJoCo cell run recorded by ``sfp dataset record-sim --cell`` (its ``bags/episodes.json``
holds each episode's scene) and built by ``sfp dataset build``, take each episode's first frame
per camera, the encoder's spatial-softmax keypoints (eval mode: centre crop), and fit a ridge
regression from them to each object's table position, leave one episode out. A linear probe:
if the keypoints hold an object's place, it reads it back to millimetres (Lift's one cube); if
they hold only the middle of two objects, it reads the midpoint well and each object poorly.

    sfp bench encoder-probe --case "panda lift=CKPT,RUN_DIR" --case "panda pick either=CKPT,RUN_DIR" --json F

``RUN_DIR`` holds ``bags/`` and ``dataset/`` (the layout of ``make cell-policy``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import load_model
from .common import machine_info, print_rendered

RIDGE = 1e-2  # on keypoints in [-1, 1]: small against their spread, keeps the solve well posed


def scene_targets(scene: dict[str, Any]) -> dict[str, np.ndarray]:
    """Named table positions (x, y in m) of one recorded scene: Lift's ``cube``, or PickEither's
    ``red`` and ``green`` cubes and their ``midpoint``."""
    if "cube_xy" in scene:
        return {"cube": np.asarray(scene["cube_xy"][:2], float)}
    if "red" in scene and "green" in scene:
        red, green = np.asarray(scene["red"][:2], float), np.asarray(scene["green"][:2], float)
        return {"red": red, "green": green, "midpoint": 0.5 * (red + green)}
    raise ValueError(f"unknown scene (no cube_xy, no red/green): {sorted(scene)}")


def loo_ridge(X: np.ndarray, Y: np.ndarray, lam: float = RIDGE) -> tuple[float, float]:
    """Leave-one-out ridge regression X (N, F) -> Y (N, 2): (R², mean Euclidean error in Y's
    units) of the held-out predictions."""
    n = len(X)
    if n < 3:
        raise ValueError(f"a leave-one-out probe needs at least 3 episodes, got {n}")
    A = np.c_[X, np.ones(n)]
    pred = np.empty_like(Y, dtype=float)
    eye = lam * np.eye(A.shape[1])
    for i in range(n):
        keep = np.arange(n) != i
        w = np.linalg.solve(A[keep].T @ A[keep] + eye, A[keep].T @ Y[keep])
        pred[i] = A[i] @ w
    r2 = 1.0 - float(((pred - Y) ** 2).sum() / ((Y - Y.mean(0)) ** 2).sum())
    return r2, float(np.linalg.norm(pred - Y, axis=1).mean())


def first_frame_keypoints(model: torch.nn.Module, dataset: Path, names: list[str]) -> dict[str, np.ndarray]:
    """camera -> (N, 2K) keypoints of the first frame of each dataset episode in ``names``."""
    cams = model.encoder.cams
    out: dict[str, list[np.ndarray]] = {c: [] for c in cams}
    for name in names:
        with np.load(dataset / name) as ep:
            for cam, enc in cams.items():
                out[cam].append(enc.keypoints_of(torch.from_numpy(ep[f"image_{cam}"][:1]))[0].numpy())
    return {c: np.stack(v) for c, v in out.items()}


def probe(label: str, checkpoint: Path, run_dir: Path) -> dict[str, Any]:
    """One case: per camera, the keypoints' spread over episodes and each target's probe."""
    meta = json.loads((run_dir / "bags" / "episodes.json").read_text())
    scenes = {e["bag"]: e["scene"] for e in meta["episodes"]}
    built = json.loads((run_dir / "dataset" / "dataset.json").read_text())
    sources = [Path(e["bag"]).name for e in built["source"]["episodes"]]
    if len(sources) != len(built["episodes"]) or any(s not in scenes for s in sources):
        raise ValueError(f"{run_dir}: the dataset's episodes are not the recorded bags of bags/episodes.json")
    targets = [scene_targets(scenes[s]) for s in sources]
    model, _ = load_model(checkpoint)
    model.eval()
    if not getattr(model.encoder, "cams", None):
        raise ValueError(f"{checkpoint}: the policy has no camera")
    with torch.no_grad():
        kps = first_frame_keypoints(model, run_dir / "dataset", list(built["episodes"]))
    cameras = {}
    for cam, X in kps.items():
        probes = {}
        for name in targets[0]:
            r2, err = loo_ridge(X, np.stack([t[name] for t in targets]))
            probes[name] = {"r2": r2, "error_mm": 1000.0 * err}
        cameras[cam] = {"keypoint_spread": float(np.median(X.std(0))), "targets": probes}
    return {"label": label, "checkpoint": str(checkpoint), "run_dir": str(run_dir), "task": meta.get("task"),
            "robot": meta.get("cell"), "episodes": len(sources), "cameras": cameras}


def render(doc: dict[str, Any]) -> str:
    lines = ["| policy | camera | keypoint spread | target: leave-one-out R², mean error |", "|---|---|---|---|"]
    for case in doc["cases"]:
        for cam, c in case["cameras"].items():
            cells = ", ".join(f"{n} {p['r2']:.2f}, {p['error_mm']:.0f} mm" for n, p in c["targets"].items())
            lines.append(f"| {case['label']} ({case['episodes']} episodes) | {cam} | {c['keypoint_spread']:.3f} | {cells} |")
    lines += ["", ("First frame of each demo; keypoints are the encoder's spatial-softmax (x, y) in [-1, 1] "
                   "(spread: their median standard deviation over the episodes); a ridge regression (λ "
                   f"{doc.get('ridge', RIDGE):g}) from them to each object's table position, each episode "
                   "predicted by a fit to the others. Generated by `sfp bench encoder-probe`.")]
    return "\n".join(lines)


def parse_case(text: str) -> tuple[str, Path, Path]:
    label, sep, rest = text.partition("=")
    ckpt, comma, run_dir = rest.partition(",")
    if not (sep and comma and label.strip() and ckpt and run_dir):
        raise ValueError(f"--case wants LABEL=CHECKPOINT,RUN_DIR, got {text!r}")
    return label.strip(), Path(ckpt), Path(run_dir)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case", action="append", default=[], metavar="LABEL=CHECKPOINT,RUN_DIR",
                   help="a policy and the cell run (bags/ + dataset/) it is probed on (repeatable)")
    p.add_argument("--json", type=Path, help="write results here")
    p.add_argument("--render", type=Path, help="print the table of this JSON instead of measuring")


def run(args: argparse.Namespace) -> int:
    if args.render:
        return print_rendered(args.render, render, "encoder_probe", None)
    if not args.case:
        raise ValueError("give at least one --case LABEL=CHECKPOINT,RUN_DIR (or --render JSON)")
    torch.set_num_threads(1)
    doc = {"ridge": RIDGE, "machine": machine_info(), "cases": [probe(*parse_case(c)) for c in args.case]}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2))
    print(render(doc))
    return 0
