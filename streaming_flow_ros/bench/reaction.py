"""`sfp bench reaction`: how fast each method reacts when the world changes under it, what
streaming is for. Push-T (state), through the one control loop the node runs
(policy/control.py) on a simulated clock at 50 Hz (5 ticks per 10 Hz data period).

Protocol, per episode (seed e) and method:
- two rollouts from the same seed: the *base* one, and the *perturbed* one in which, at data
  step ``k`` (uniform in [30, 60): 3-6 s in), the T block is displaced by 40-80 px in a random
  direction and turned by up to +-0.5 rad (pymunk pose set, velocities zeroed);
- the policy sees observations ``delay`` data periods late (0 / 0.1 / 0.2 / 0.4 s), with
  latency compensation on (``skip_elapsed``, the node's default);
- **reaction latency**: from the perturbation to the first tick whose command differs from the
  base rollout's command at the same tick by more than ``EPS_PX`` (1 px of the 512 px
  workspace). Both rollouts share every input, random stream and tick up to the perturbation,
  so the first difference is the policy responding to what changed; an episode with no
  response within 3 s counts as 3 s;
- **success after perturbation**: the perturbed rollout reaches coverage > 0.95 within 20 s
  after the perturbation;
- **jerk RMS** of the commanded PD target (third difference / dt^3, px/s^3) over the
  perturbed rollout, and **seam jerk RMS**: the same at the ticks where a new plan started.

Every method runs the same episodes, side by side, in one process. ``--task sim`` runs the same
protocol on the arm simulator's reaching task (the target jumps: bench/reaction_sim.py) and
``--cell panda`` on the MuJoCo arm cell (Panda Lift, the cube moved during the approach:
bench/reaction_cell.py); the JSON then names its task, robot and units.

    sfp bench reaction --checkpoint sfp=runs/pusht/sfp/policy.safetensors \\
        --checkpoint fm_chunk=runs/pusht/fm/policy.safetensors --json runs/bench/reaction.json
    sfp bench reaction --cell panda --checkpoint sfp=runs/cells/panda_lift/sfp/policy.safetensors \\
        --checkpoint fm_chunk=runs/cells/panda_lift/fm/policy.safetensors --json runs/bench/reaction_cell.json
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..policy.control import LoopConfig
from .common import CpuSteal, machine_info, print_rendered

EPS_PX = 1.0  # a command this far from the base rollout's is a reaction
CONTROL_MULT = 5  # 50 Hz control on 10 Hz data
NO_REACTION_S = 3.0
AFTER_S = 20.0
DELAYS = (0, 1, 2, 4)  # data periods
# What the JSON says about the protocol (render's caption; bench/reaction_cell.py about() for the cell)
PUSHT = {"task": "pusht", "robot": None, "control_hz": 50.0, "eps_px": EPS_PX, "units": "px/s^3",
         "protocol": "Push-T state, block displaced at 3-6 s"}
# method label -> (policy type for the runtime, reanchor every N observations)
VARIANTS = {"sfp": ("sfp", 1), "sfp_horizon": ("sfp", 8), "fm_chunk": ("fm_chunk", 8), "fm_rtc": ("fm_rtc", 8),
            "fm_async": ("fm_async", 8), "dp_ddim": ("dp_ddim", 8)}


def perturbation(seed: int) -> tuple[int, np.ndarray, float]:
    """(data step k, block displacement (2,) px, block rotation rad) of episode ``seed``."""
    rng = np.random.default_rng(10_000 + seed)
    k = int(rng.integers(30, 60))
    direction = rng.uniform(0, 2 * np.pi)
    shift = rng.uniform(40.0, 80.0) * np.array([np.cos(direction), np.sin(direction)])
    return k, shift, float(rng.uniform(-0.5, 0.5))


def displace_block(env, shift: np.ndarray, turn: float) -> None:
    """Move Push-T's block (a pymunk body) by ``shift`` px and ``turn`` rad, at rest, inside
    the workspace."""
    block = env.env.block
    x, y = np.clip(np.array(block.position) + shift, 60.0, 452.0)
    block.position = (float(x), float(y))
    block.angle = float(block.angle + turn)
    block.velocity, block.angular_velocity = (0.0, 0.0), 0.0
    env.env.space.reindex_shapes_for_body(block)


def rollout(checkpoint: str, method: str, reanchor_every: int, seed: int, delay: int,
            perturb: bool) -> dict[str, Any]:
    """One episode through the ControlLoop; returns commands (T, 2), plan-start ticks and the
    coverage after every tick."""
    from ..policy.control import ControlLoop, LatestObservation, TickInputs
    from ..policy.protocol import Observation
    from ..policy.safety import SafetyLimits
    from ..policy.streaming import load_policy
    from .pusht.env import DATA_RATE_HZ, PushTState
    from .pusht.evaluate import EvalSettings, loop_config, runtime_config

    m = CONTROL_MULT
    rate = DATA_RATE_HZ * m
    settings = EvalSettings(episodes=1, delay=delay, control_mult=m, reanchor_every=reanchor_every, latency_comp=True)
    policy = load_policy(checkpoint, runtime_config(method, rate, seed=seed, latency_comp=True))
    env = PushTState(rate)
    k, shift, turn = perturbation(seed)
    history = [env.reset(seed)]
    plans = LatestObservation(policy.prepare)
    d = policy.spec.action_dim
    loop = ControlLoop(policy, SafetyLimits(np.full(d, -np.inf), np.full(d, np.inf), np.full(d, np.inf)),
                       loop_config(settings), plans)
    n_ticks = int((k / DATA_RATE_HZ + (AFTER_S if perturb else NO_REACTION_S + 0.5)) * rate)
    commands, starts, coverage = [], [], []
    t_o = policy.obs_horizon
    for i in range(n_ticks):
        if perturb and i == k * m:
            displace_block(env, shift, turn)
            history[-1] = env.observe()
        if i % m == 0:
            j = max(0, i - delay * m)
            idx = [max(0, j - m * (t_o - 1 - q)) for q in range(t_o)]
            plans.offer(Observation(np.stack([history[q] for q in idx]), {}, j / rate))
        out = loop.tick(i / rate, TickInputs.simulated(history[i][:2]))
        commands.append(out.command.copy())
        if out.reanchored:
            starts.append(i)
        step = env.step(out.command)
        history.append(step.obs)
        coverage.append(step.coverage)
    return {"commands": np.array(commands), "starts": starts, "coverage": np.array(coverage), "k_tick": k * m,
            "rate": rate}


def jerk(commands: np.ndarray, rate: float) -> np.ndarray:
    """|third difference| / dt^3 per tick (T - 3,), px/s^3."""
    return np.linalg.norm(np.diff(commands, n=3, axis=0), axis=1) * rate**3


def compare(diff: np.ndarray, eps: float, commands: np.ndarray, starts: list[int], rate: float) -> dict[str, float]:
    """The row of one episode but its success: ``diff`` (T,) how far the perturbed rollout's
    command is from the base one's at each tick after the perturbation, the first tick beyond
    ``eps`` the reaction (capped at NO_REACTION_S); jerk RMS of the perturbed ``commands`` (T, D)
    overall and at its plan starts ``starts`` (seams)."""
    hit = np.flatnonzero(diff > eps)
    reaction_s = NO_REACTION_S if hit.size == 0 else min(NO_REACTION_S, (hit[0] + 1) / rate)
    j = jerk(commands, rate)
    seams = [s - 2 for s in starts if 2 <= s - 2 < len(j)]  # the third difference centred on the seam
    return {"reaction_s": reaction_s, "jerk_rms": float(np.sqrt(np.mean(j**2))),
            "seam_jerk_rms": float(np.sqrt(np.mean(j[seams] ** 2))) if seams else float("nan")}


def arm_loop_config(every: int, control_hz: float, data_hz: float) -> LoopConfig:
    """The node's control loop for the joint-space benches (the cell and the arm simulator): a
    plan every ``every`` observations (``observation`` when 1), inputs never stale (the benches
    inject the delays)."""
    if every == 1:
        return LoopConfig(control_rate_hz=control_hz, reanchor="observation", max_obs_age=1e6)
    return LoopConfig(control_rate_hz=control_hz, reanchor="ticks", reanchor_ticks=every * round(control_hz / data_hz),
                      max_obs_age=1e6)


def compare_joint_rollouts(base: dict[str, Any], pert: dict[str, Any], eps: float, what: str,
                           cols: Any = slice(None)) -> dict[str, float]:
    """``compare`` for two joint-space rollouts (``commands`` (T, D) rad, ``starts``, ``k_tick``,
    ``rate``) on the command columns ``cols``: the largest joint difference per tick after the
    perturbation. Raises RuntimeError when they differ before it (the criterion needs them
    equal; ``what`` names the episode)."""
    k, rate = pert["k_tick"], pert["rate"]
    if not np.array_equal(base["commands"][:k], pert["commands"][:k]):
        raise RuntimeError(f"{what}: the base and perturbed rollouts differ before the perturbation "
                           "(something is not deterministic)")
    n = min(len(base["commands"]), len(pert["commands"]))
    diff = np.abs(pert["commands"][k:n, cols] - base["commands"][k:n, cols]).max(axis=1, initial=0.0)
    return compare(diff, eps, pert["commands"][:, cols], pert["starts"], rate)


def episode(checkpoint: str, method: str, every: int, seed: int, delay: int) -> dict[str, float]:
    base = rollout(checkpoint, method, every, seed, delay, perturb=False)
    pert = rollout(checkpoint, method, every, seed, delay, perturb=True)
    k, rate = pert["k_tick"], pert["rate"]
    n = min(len(base["commands"]), len(pert["commands"]))
    assert np.allclose(base["commands"][:k], pert["commands"][:k]), "the rollouts differ before the perturbation"
    diff = np.linalg.norm(pert["commands"][k:n] - base["commands"][k:n], axis=1)
    after = pert["coverage"][k:]
    return {**compare(diff, EPS_PX, pert["commands"], pert["starts"], rate), "success": bool((after > 0.95).any())}


def summarize(rows: list[dict[str, float]]) -> dict[str, float]:
    r = np.array([x["reaction_s"] for x in rows]) * 1e3
    return {"episodes": len(rows), "reaction_ms_p50": float(np.percentile(r, 50)),
            "reaction_ms_p90": float(np.percentile(r, 90)),
            "success_after_perturbation": float(np.mean([x["success"] for x in rows])),
            "jerk_rms": float(np.mean([x["jerk_rms"] for x in rows])),
            "seam_jerk_rms": float(np.nanmean([x["seam_jerk_rms"] for x in rows])),
            **({"reached_after_perturbation": float(np.mean([x["reached"] for x in rows]))} if "reached" in rows[0] else {})}


def render(doc: dict[str, Any]) -> str:
    """The markdown table of a results JSON, captioned with its task's protocol and units (a
    Push-T JSON written before they were recorded reads as Push-T)."""
    about = {**PUSHT, **doc}
    out = [(f"{about['protocol']}, {doc['episodes']} episodes per cell, control {about['control_hz']:.0f} Hz; "
            f"reaction p50 / p90 (ms), success after the perturbation, jerk RMS overall / at plan seams "
            f"({about['units']})"), "",
           ]
    # a task that separates reaching the new goal from succeeding (e.g. without a collision) gets a column
    reached = all("reached_after_perturbation" in s for per in doc["methods"].values() for s in per.values())
    columns = ["method", "delay, s", "reaction p50", "reaction p90", *(["reached after"] if reached else []),
               "success after", "jerk RMS", "seam jerk RMS"]
    out += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for method, per in doc["methods"].items():
        for delay, s in per.items():
            cells = [method, f"{float(delay):.1f}", f"{s['reaction_ms_p50']:.0f}", f"{s['reaction_ms_p90']:.0f}",
                     *([f"{s['reached_after_perturbation']:.2f}"] if reached else []),
                     f"{s['success_after_perturbation']:.2f}", f"{s['jerk_rms']:.3g}", f"{s['seam_jerk_rms']:.3g}"]
            out.append("| " + " | ".join(cells) + " |")
    out += ["", f"CPU steal: {doc.get('cpu_steal', float('nan')):.1%}. Command: `{doc['command']}`."]
    return "\n".join(out)


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for method, per in doc["methods"].items():
        delays = [float(d) for d in per]
        axes[0].plot(delays, [s["reaction_ms_p50"] for s in per.values()], "o-", label=method)
        axes[1].plot(delays, [s["success_after_perturbation"] for s in per.values()], "o-", label=method)
    axes[0].set(xlabel="added observation delay, s", ylabel="reaction latency p50, ms", title="reaction")
    axes[1].set(xlabel="added observation delay, s", ylabel="success after perturbation", ylim=(0, 1.05),
                title="recovery")
    axes[0].legend(fontsize=8)
    fig.suptitle({**PUSHT, **doc}["protocol"].split(",")[0], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", action="append", default=[], metavar="METHOD=PATH",
                   help=f"a checkpoint per method label ({', '.join(VARIANTS)}; sfp feeds sfp and sfp_horizon, "
                        "fm_chunk feeds fm_chunk and its RTC / async executors, dp feeds dp_ddim)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--delays", default=",".join(map(str, DELAYS)), help="data periods (0.1 s)")
    p.add_argument("--quick", action="store_true", help="2 episodes, delays 0 and 2")
    p.add_argument("--task", choices=("pusht", "sim"), default="pusht",
                   help="Push-T state, or the arm simulator's reaching task (T4: the target jumps)")
    p.add_argument("--cell", choices=("panda",), help="the MuJoCo arm cell (Lift) instead of --task")
    p.add_argument("--json", type=Path, help="write results here")
    p.add_argument("--plot", type=Path, help="write the figure here")
    p.add_argument("--render", type=Path, help="print the table of this JSON instead of measuring")
    p.add_argument("--update-doc", type=Path, help="with --render: replace the reaction section of this markdown file")


def run(args: argparse.Namespace) -> int:
    if args.render:
        return print_rendered(args.render, render, "reaction", args.update_doc)
    paths = dict(kv.split("=", 1) for kv in args.checkpoint)
    feeds = {"sfp": "sfp", "sfp_horizon": "sfp", "fm_chunk": "fm_chunk", "fm_rtc": "fm_chunk", "fm_async": "fm_chunk",
             "dp_ddim": "dp"}
    methods = {label: (paths.get(feeds[label]) or paths.get(label), *VARIANTS[label]) for label in VARIANTS}
    methods = {k: v for k, v in methods.items() if v[0]}
    if not methods:
        raise ValueError(f"give at least one --checkpoint METHOD=PATH (METHOD in {sorted(set(feeds.values()))})")
    episodes = 2 if args.quick else args.episodes
    delays = [0, 2] if args.quick else [int(d) for d in args.delays.split(",")]
    if args.cell:
        from . import reaction_cell  # MuJoCo: only for the cell

        play, about = partial(reaction_cell.episode, robot=args.cell), reaction_cell.about(args.cell)
    elif args.task == "sim":
        from . import reaction_sim

        play, about = reaction_sim.episode, reaction_sim.about()
    else:
        play, about = episode, PUSHT
    steal, t0 = CpuSteal(), time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for label, (path, method, every) in methods.items():
        results[label] = {}
        for delay in delays:
            rows = [play(path, method, every, seed, delay) for seed in range(episodes)]
            s = results[label][f"{delay / 10:.1f}"] = summarize(rows)
            print(f"{label:12s} delay {delay / 10:.1f} s: reaction p50 {s['reaction_ms_p50']:.0f} ms "
                  f"p90 {s['reaction_ms_p90']:.0f} ms, success {s['success_after_perturbation']:.2f}, "
                  f"jerk {s['jerk_rms']:.3g}, seam jerk {s['seam_jerk_rms']:.3g}", flush=True)
    doc = {"machine": machine_info(), "episodes": episodes, **about,
           "methods": results, "cpu_steal": steal.share(), "seconds": time.perf_counter() - t0,
           "command": "sfp bench reaction " + (f"--cell {args.cell} " if args.cell else
                                               f"--task {args.task} " if args.task != "pusht" else "")
           + " ".join(f"--checkpoint {c}" for c in args.checkpoint)
           + (" --quick" if args.quick else f" --episodes {episodes} --delays {args.delays}")}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2))
    if args.plot:
        plot(doc, args.plot)
    print(render(doc))
    return 0
