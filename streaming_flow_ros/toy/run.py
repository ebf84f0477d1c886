"""`sfp toy`: train SFP on the T1 toys, sample trajectories, print metrics, write JSON and a PNG.

    sfp toy [--steps 2500] [--samples 1000] [--json toy.json] [--plot toy.png] [--seed 0]

Stabilising SFP samples its start from N(a0, sigma0^2); the latent variant starts exactly at a0
and only z0 is random. Uses the same model, path, trainer and stepper as the real policy.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..flow.stepper import integrate
from ..nets.model import ModelConfig, SFPModel
from ..spec import IOSpec
from ..train.config import TrainConfig
from ..train.trainer import train
from . import tasks
from .report import row_key

log = logging.getLogger(__name__)


class ChunkSource:
    """Demo chunks as a batch source, with an empty observation (the toys are unconditional)."""

    def __init__(self, demos: np.ndarray, obs_horizon: int) -> None:
        self.chunks = torch.as_tensor(demos, dtype=torch.float32)
        self.obs_horizon = obs_horizon

    def __len__(self) -> int:
        return len(self.chunks)

    def batch(self, idx: np.ndarray) -> dict:
        B = len(idx)
        return {"state_n": torch.zeros(B, self.obs_horizon, 0), "images": {}, "chunk_n": self.chunks[torch.as_tensor(idx)]}


@dataclass(frozen=True)
class Variant:
    task: str
    path: str  # stabilizing | latent
    sigma0: float
    k: float
    sigma1: float = 0.05
    mode_dim: int = 0  # > 0: a mode latent (ModelConfig.mode_dim), sampled from a0 exactly
    mode_beta: float = 1.0e-3
    mode_prior: str = "learned"

    @property
    def key(self) -> str:
        return f"{self.task}/{self.path}" + ("/mode" if self.mode_dim else "")


VARIANTS = (
    Variant("bifurcation", "stabilizing", sigma0=0.05, k=2.5),
    # The authors' toy latent widths (sigma0=0.001, sigma1=0.05) gave a field that ignored z0 here
    # (balance error ~0.5): with a razor-thin training tube nothing teaches the net what to do
    # off it. sigma0=0.02, sigma1=0.2 works; sigma0=0.05, sigma1 in {0.1, 0.3} did not.
    Variant("bifurcation", "latent", sigma0=0.02, k=2.5, sigma1=0.2),
    Variant("bifurcation", "stabilizing", sigma0=0.05, k=2.5, mode_dim=2),
    Variant("crossing", "stabilizing", sigma0=0.05, k=2.5),
    Variant("crossing", "stabilizing", sigma0=0.05, k=2.5, mode_dim=2),
    Variant("obstacle", "stabilizing", sigma0=0.05, k=2.5),
)


def train_toy(v: Variant, task: tasks.ToyTask, steps: int, seed: int) -> tuple[SFPModel, float]:
    H = task.demos.shape[1] - 1
    spec = IOSpec(state_names=(), action_names=task.names, data_rate_hz=float(H))
    mc = ModelConfig(obs_horizon=1, pred_horizon=H, action_horizon=H, path=v.path, sigma0=v.sigma0,
                     k=v.k, sigma1=v.sigma1, hidden=128, depth=3, time_emb_dim=32,
                     mode_dim=v.mode_dim, mode_beta=v.mode_beta, mode_prior=v.mode_prior)
    cfg = TrainConfig(steps=steps, batch_size=256, lr=1e-3, warmup_steps=100, seed=seed, progress=False, model=mc)
    torch.manual_seed(seed)  # initial weights from the seed: a toy run is reproducible
    model = SFPModel(mc, spec)
    res = train(model, ChunkSource(task.demos, 1), cfg)
    return res.ema, res.seconds


@torch.no_grad()
def sample_paths(model: SFPModel, n: int, a0: np.ndarray, start_sigma: float, seed: int, integrator: str = "euler") -> np.ndarray:
    """(n, H+1, D) trajectories from a0 (+ start noise), one step per waypoint."""
    H, D = model.config.pred_horizon, model.spec.action_dim
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(a0, dtype=torch.float32).expand(n, D).clone()
    x = x + start_sigma * torch.randn(n, D, generator=gen)
    if model.config.path == "latent":
        x = torch.cat([x, torch.randn(n, D, generator=gen)], -1)
    z = None
    if model.mode_dim:  # one mode latent per sample, drawn from the model's prior
        z = model.mode_prior_draw(torch.zeros(n, 0), torch.randn(n, model.mode_dim, generator=gen))
    cache = model.velocity.precompute(model.with_mode(torch.zeros(n, 0), z))
    tbuf = torch.zeros(n)

    def v(xx, t):
        return model.velocity.forward_cached(xx, tbuf.fill_(t), cache)

    traj = integrate(v, x, H, method=integrator)[..., :D]  # (H+1, n, D)
    return traj.permute(1, 0, 2).numpy()


def evaluate(v: Variant, model: SFPModel, task: tasks.ToyTask, n: int, seed: int) -> tuple[dict, np.ndarray]:
    a0 = task.demos[0, 0]
    start_sigma = v.sigma0 if v.path == "stabilizing" and not v.mode_dim else 0.0
    samples = sample_paths(model, n, a0, start_sigma, seed)
    H = samples.shape[1] - 1
    sigma_t = v.sigma0 * np.exp(-v.k * np.linspace(0, 1, H + 1))
    if v.path == "latent":  # the latent tube widens to sigma1 * t instead
        sigma_t = np.sqrt((v.sigma0 * np.exp(-v.k * np.linspace(0, 1, H + 1))) ** 2 + (model.path.sigma_r * np.linspace(0, 1, H + 1)) ** 2)
    m = {"marginal_distance": tasks.marginal_distance(samples, task, sigma_t, seed)}
    m.update({"bifurcation": tasks.bifurcation_metrics, "crossing": tasks.crossing_metrics,
              "obstacle": tasks.obstacle_metrics}[v.task](samples))
    return m, samples


def run_toys(steps: int = 2500, n: int = 1000, seed: int = 0, variants=VARIANTS) -> tuple[dict, dict]:
    torch.set_num_threads(1)
    results: dict = {}
    samples: dict = {}
    for v in variants:
        task = tasks.TASKS[v.task](seed=seed)
        model, secs = train_toy(v, task, steps, seed)
        m, s = evaluate(v, model, task, n, seed + 1)
        m["train_seconds"] = round(secs, 2)
        results[v.key] = m
        samples[v.key] = (task, s)
        log.info("%s: %s", v.key, m)
    out = {row_key(v.__dict__): results[v.key] for v in variants}
    out["settings"] = {"steps": steps, "samples": n, "seed": seed, "variants": [v.__dict__ for v in variants]}
    return out, samples


def plot(samples: dict, path: str | Path, show: int = 150) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(samples), figsize=(4.2 * len(samples), 4.2))
    for ax, (key, (task, s)) in zip(np.atleast_1d(axes), samples.items()):
        H = s.shape[1] - 1
        t = np.linspace(0, 1, H + 1)
        for d in task.demos[:40]:
            if d.shape[1] == 1:
                ax.plot(t, d[:, 0], color="0.6", lw=3, alpha=0.3)
            else:
                ax.plot(d[:, 0], d[:, 1], color="0.6", lw=3, alpha=0.3)
        for tr in s[:show]:
            side = tr[-1, 0] if tr.shape[1] == 1 else tr[H // 4, 0]  # 1-D: end; 2-D: early x
            col = "tab:blue" if side > 0 else "tab:orange"
            if tr.shape[1] == 1:
                ax.plot(t, tr[:, 0], color=col, lw=0.6, alpha=0.5)
            else:
                ax.plot(tr[:, 0], tr[:, 1], color=col, lw=0.6, alpha=0.5)
        if task.name == "obstacle":
            ax.add_patch(plt.Circle((0, 0), tasks.OBSTACLE_RADIUS, color="tab:red", alpha=0.4))
            ax.set_aspect("equal")
        ax.set_title(key)
        ax.set_xlabel("t" if task.demos.shape[2] == 1 else "x")
    fig.suptitle("SFP samples (colour) over demonstrations (grey)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=2500, help="training steps per toy")
    p.add_argument("--samples", type=int, default=1000, help="sampled trajectories per toy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write metrics JSON here")
    p.add_argument("--plot", default="toy.png", help="write the trajectory plot (PNG) here")


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out, samples = run_toys(args.steps, args.samples, args.seed)
    out["total_seconds"] = round(time.perf_counter() - t0, 1)
    for key, m in out.items():
        if key in ("settings", "total_seconds"):
            continue
        print(f"{key:20s} " + "  ".join(f"{k}={v:.3f}" for k, v in m.items() if isinstance(v, float)))
    print(f"total {out['total_seconds']} s")
    if args.plot:
        plot(samples, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"json: {args.json}")
    return 0
