"""`sfp bench pusht run`: collect -> train every method (per seed) -> evaluate -> table + JSON.

JSON (``--json``)::

    {"<method>": {"score_mean", "score_std", "success_mean", "success_std", "params",
                  "seeds": [{"seed", "score", "success", "max_coverage", "episodes", "train"}]},
                                                    # sfp sfp_k0 dp_ddim dp_ddpm fm_chunk
     "variants": {"sfp_reanchor1": {...}},          # SFP re-anchored at every observation
     "random": {"score", "success", ...}, "expert": {"expert_success_rate", ...},
     "stress": {"delay": {"<method>": {"<k>": {score, success, ...}}},
                "delay_comp": {"<method>": {"<k>": {...}}},  # the same, with latency compensation
                "rate5x": {"<method>": {...}}, "seed": 0, "seeds": [0, ...], "episodes": N},
                # with stress_seeds > 1 each delay cell is the mean over those training seeds
                # (score, success, score_std, success_std, "per_seed": [...]), rate5x too
     "settings": {...}, "machine": {...}, "versions": {...}, "seconds": s, "quick": bool}

Everything lands under ``workdir`` (dataset/, seed<S>/<slot>/ checkpoints, eval/ results):
re-running with the same workdir reuses the dataset, finished trainings and the evaluations
written after their checkpoint.
``jobs`` > 1 runs independent trainings / evaluations in that many processes, 1 torch thread
each (the longest first).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...checkpoint import read_checkpoint
from ...spec import IOSpec
from ..common import format_table, machine_info, versions
from .collect import collect
from .env import TASKS, task_of
from .evaluate import (
    EvalSettings,
    default_reanchor,
    evaluate_checkpoint,
    evaluate_expert,
    evaluate_random,
)
from .methods import LR, METHOD_SLOT, METHODS, SFP_K, SFP_SIGMA0, SLOTS, train_slot
from .metrics import mean_std

log = logging.getLogger(__name__)

STRESS_DELAYS = (0, 1, 2, 4)
STRESS_METHODS = ("sfp", "dp_ddim", "fm_chunk")  # dp_ddpm: 10x the cost of DDIM per chunk
STRESS_RATE_MULT = 5
# rough relative costs, to start the longest tasks first
_TRAIN_COST = {"sfp": 1, "sfp_k0": 1, "dp": 6, "fm_chunk": 6}
_EVAL_COST = {"sfp": 1, "sfp_k0": 1, "dp_ddim": 3, "fm_chunk": 3, "dp_ddpm": 30}


@dataclass(frozen=True)
class RunSettings:
    demos: int = 200
    train_steps: int = 4000
    batch_size: int = 256
    lr: float = LR
    seeds: int = 3
    episodes: int = 50
    max_steps: int = 300
    stress_episodes: int = 50  # 0: no stress tests
    stress_seeds: int = 1  # training seeds 0..n-1 whose checkpoints get the stress tests (delay and 5x rate)
    stress_methods: tuple[str, ...] | None = None  # None: STRESS_METHODS (dp_ddpm left out for its cost)
    ddpm_episodes: int | None = None  # None: = episodes (DDPM-100 costs ~10x DDIM per chunk)
    threads: int = 0  # torch threads for training with jobs == 1 (0: torch's default)
    jobs: int = 1
    methods: tuple[str, ...] = METHODS  # a subset skips the others (and their stress tests)
    task: str = "state"  # env.TASKS: state (T2) or pixels (T3)
    flow_samples: int = 1  # SFP slots: (t, noise) draws per window per step (ModelConfig.flow_samples)
    sfp_k: float = SFP_K  # the sfp slot's path gain (sfp_k0: 0)
    sfp_sigma0: float = SFP_SIGMA0  # both SFP slots' initial tube width (normalised units)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown Push-T task {self.task!r} (known: {TASKS})")
        unknown = set(self.methods) - set(METHODS)
        if unknown or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {self.methods}")
        if self.stress_methods is not None and not set(self.stress_methods) <= set(self.methods):
            raise ValueError(f"stress_methods must be a subset of the methods run {self.methods}, "
                             f"got {self.stress_methods}")
        for name in ("demos", "train_steps", "batch_size", "seeds", "episodes", "max_steps", "jobs", "flow_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("sfp_k", "sfp_sigma0"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.stress_episodes < 0 or (self.ddpm_episodes is not None and self.ddpm_episodes < 1):
            raise ValueError(f"stress_episodes must be >= 0 (0: no stress tests) and ddpm_episodes >= 1, "
                             f"got {self.stress_episodes}, {self.ddpm_episodes}")
        if not 1 <= self.stress_seeds <= self.seeds:
            raise ValueError(f"stress_seeds must be in [1, seeds={self.seeds}], got {self.stress_seeds}")

    @classmethod
    def quick(cls) -> RunSettings:
        """A smoke test (< 2 min): numbers are meaningless."""
        return cls(demos=3, train_steps=15, batch_size=32, seeds=1, episodes=2, max_steps=40,
                   stress_episodes=1, ddpm_episodes=1, threads=1)


@dataclass(frozen=True)
class EvalTask:
    """One evaluation: a checkpoint run as ``method`` under ``settings``; cached as JSON."""

    key: str
    checkpoint: str
    method: str
    settings: EvalSettings

    def cache_name(self) -> str:
        s = self.settings
        return (f"{self.key}_e{s.episodes}_t{s.max_steps}_d{s.delay}_m{s.control_mult}"
                f"_r{s.reanchor_every}_s{s.seed0}{'' if s.integrator == 'euler' else '_i' + s.integrator}"
                f"{'_lc' if s.latency_comp else ''}.json")


def _train_task(args: tuple) -> tuple[str, int, str, dict]:
    dataset, slot, out, steps, seed, batch, threads, lr, flow_samples, k, sigma0 = args
    path, info = train_slot(dataset, slot, out, steps, seed, batch, threads, lr=lr, flow_samples=flow_samples,
                            k=k, sigma0=sigma0)
    return slot, seed, str(path), info


def _eval_task(args: tuple[EvalTask, str]) -> dict:
    task, cache_dir = args
    cache = Path(cache_dir) / task.cache_name()
    # a cached result counts only if written after the checkpoint (a retrained slot re-evaluates)
    # the cache holds the whole `eval --json` result (method, checkpoint, settings too), so
    # `summarize` reads a workdir's eval/ files like per-seed eval files
    if cache.is_file() and cache.stat().st_mtime >= Path(task.checkpoint).stat().st_mtime:
        r = json.loads(cache.read_text())
    else:
        r = evaluate_checkpoint(task.checkpoint, task.method, task.settings)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(r))
    return {k: r[k] for k in ("score", "success", "max_coverage", "episodes", "seconds") if k in r}


def _map(fn, items: list, jobs: int) -> list:
    """fn over items, in ``jobs`` spawned processes when > 1 (results in input order)."""
    if jobs <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_one_thread) as pool:
        return list(pool.map(fn, items))


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def run_benchmark(workdir: str | Path, s: RunSettings, dataset: str | Path | None = None) -> dict:
    """The whole benchmark (see the module docstring); returns the JSON document."""
    root = Path(workdir)
    t0 = time.perf_counter()
    data = Path(dataset) if dataset else root / "dataset"
    meta = data / "dataset.json"
    if meta.is_file():
        info = json.loads(meta.read_text())
        have = task_of(IOSpec.from_dict(info["spec"]))
        if have != s.task:
            raise ValueError(f"dataset {data} is for the {have!r} task, not {s.task!r}: use another --workdir/--dataset")
        expert = info.get("source", {})
        log.info("reusing dataset %s", data)
    else:
        expert = collect(data, s.demos, task=s.task)
    threads = 1 if s.jobs > 1 else s.threads
    train_args = [(str(data), slot, str(root / f"seed{seed}" / slot), s.train_steps, seed, s.batch_size, threads, s.lr,
                   s.flow_samples, s.sfp_k, s.sfp_sigma0)
                  for seed in range(s.seeds) for slot in SLOTS if slot in {METHOD_SLOT[m] for m in s.methods}]
    train_args.sort(key=lambda a: -_TRAIN_COST[a[1]])
    ckpts: dict[tuple[int, str], str] = {}
    train_info: dict[tuple[int, str], dict] = {}
    for slot, seed, path, info in _map(_train_task, train_args, s.jobs):
        ckpts[seed, slot], train_info[seed, slot] = path, info

    def es(episodes: int, **kw) -> EvalSettings:
        return EvalSettings(episodes=episodes, max_steps=s.max_steps, **kw)

    tag = f"steps{s.train_steps}_b{s.batch_size}_lr{s.lr:g}"  # which training the cached evaluations belong to
    tag += f"_fs{s.flow_samples}" if s.flow_samples > 1 else ""
    tag += f"_k{s.sfp_k:g}" if s.sfp_k != SFP_K else ""
    tag += f"_sig{s.sfp_sigma0:g}" if s.sfp_sigma0 != SFP_SIGMA0 else ""
    tasks: dict[tuple, EvalTask] = {}
    stress_methods = [m for m in (s.stress_methods if s.stress_methods is not None else STRESS_METHODS)
                      if m in s.methods and s.stress_episodes > 0]
    for method in s.methods:
        n = s.ddpm_episodes if (method == "dp_ddpm" and s.ddpm_episodes) else s.episodes
        for seed in range(s.seeds):
            tasks["main", method, seed] = EvalTask(f"{method}_seed{seed}_{tag}", ckpts[seed, METHOD_SLOT[method]], method,
                                                   es(n, reanchor_every=default_reanchor(method)))
    for seed in range(s.seeds if "sfp" in s.methods else 0):
        tasks["variant", "sfp_reanchor1", seed] = EvalTask(f"sfp_seed{seed}_{tag}", ckpts[seed, "sfp"], "sfp",
                                                           es(s.episodes, reanchor_every=1))
    for method in stress_methods:
        ra = default_reanchor(method)
        for seed in range(s.stress_seeds):
            ck, key = ckpts[seed, METHOD_SLOT[method]], f"{method}_seed{seed}_{tag}"
            for k in STRESS_DELAYS:
                tasks["delay", method, k, seed] = EvalTask(key, ck, method, es(s.stress_episodes, delay=k,
                                                                               reanchor_every=ra))
                if k > 0:  # at delay 0 compensation changes nothing: the same evaluation
                    tasks["delay_comp", method, k, seed] = EvalTask(key, ck, method,
                                                                    es(s.stress_episodes, delay=k, reanchor_every=ra,
                                                                       latency_comp=True))
            tasks["rate", method, seed] = EvalTask(key, ck, method, es(s.stress_episodes, control_mult=STRESS_RATE_MULT,
                                                                       reanchor_every=ra))
    keys = sorted(tasks, key=lambda k: -_EVAL_COST.get(tasks[k].method, 1) * tasks[k].settings.episodes
                  * tasks[k].settings.control_mult)
    done = dict(zip(keys, _map(_eval_task, [(tasks[k], str(root / "eval")) for k in keys], s.jobs)))

    doc: dict = {}
    for method in s.methods:
        per_seed = [{"seed": seed, **done["main", method, seed], "train": train_info[seed, METHOD_SLOT[method]]}
                    for seed in range(s.seeds)]
        doc[method] = {**aggregate(per_seed), "params": checkpoint_params(Path(ckpts[0, METHOD_SLOT[method]]))}
    doc["variants"] = {"sfp_reanchor1": aggregate([{"seed": seed, **done["variant", "sfp_reanchor1", seed]}
                                                    for seed in range(s.seeds)])} if "sfp" in s.methods else {}
    random = evaluate_random(es(s.episodes))
    doc["random"] = {k: random[k] for k in ("score", "success", "max_coverage", "episodes")}
    on_eval = evaluate_expert(es(s.episodes))
    doc["expert"] = {**expert, "eval_seeds": {k: on_eval[k] for k in ("score", "success", "max_coverage", "episodes")}}

    def cell(*key) -> dict:
        """One stress cell: seed 0's result, or the mean over the stress seeds (with per_seed)."""
        runs = [done[(*key, seed)] for seed in range(s.stress_seeds)]
        return runs[0] if len(runs) == 1 else _stress_mean(runs)

    doc["stress"] = {
        "delay": {m: {str(k): cell("delay", m, k) for k in STRESS_DELAYS} for m in stress_methods},
        "delay_comp": {m: {str(k): cell("delay_comp" if k else "delay", m, k) for k in STRESS_DELAYS}
                       for m in stress_methods},
        "rate5x": {m: cell("rate", m) for m in stress_methods},
        "seed": 0,
        "seeds": list(range(s.stress_seeds)),
        "episodes": s.stress_episodes,
        "note": "delay in control steps at 10 Hz; delay_comp: the same with start(now=...), each method "
                "compensating the observation's age (SFP: flow caught up with that age; chunks: elapsed waypoints "
                "skipped); rate5x: env and policy stepped at 50 Hz, observations at 10 Hz",
    }
    doc["settings"] = {
        **asdict(s), "horizons": {"obs": 2, "pred": 16, "action": 8}, "data_rate_hz": 10,
        "pd_gains": {"kp": 100, "kv": 20}, "eval_seeds": f"0..{s.episodes - 1}",
        "sfp": {"sigma0": s.sfp_sigma0, "k": s.sfp_k, "euler_steps_per_action": 1, "reanchor_every": 8,
                "flow_samples": s.flow_samples,
                "start": "last commanded action (deterministic, start_sigma 0)"},
        "chunk_reanchor_every": 8,
        "samplers": {"dp_ddpm": "DDPM 100", "dp_ddim": "DDIM 10", "fm_chunk": "Euler 10"},
        "workdir": str(root), "dataset": str(data),
    }
    doc["machine"] = machine_info()
    doc["versions"] = versions(("torch", "numpy", "diffusers", "gym-pusht", "pymunk", "shapely", "gymnasium"))
    doc["seconds"] = time.perf_counter() - t0
    return doc


def checkpoint_params(path: Path) -> dict[str, int]:
    """{"encoder", "net", "total"} parameter counts of a checkpoint (EMA weights)."""
    tensors = read_checkpoint(path).tensors
    enc = sum(v.numel() for k, v in tensors.items() if k.startswith("encoder."))
    total = sum(v.numel() for v in tensors.values())
    return {"encoder": int(enc), "net": int(total - enc), "total": int(total)}


def aggregate(per_seed: list[dict]) -> dict:
    sm, ss = mean_std([r["score"] for r in per_seed])
    cm, cs = mean_std([r["success"] for r in per_seed])
    return {"score_mean": sm, "score_std": ss, "success_mean": cm, "success_std": cs, "seeds": per_seed}


def _stress_mean(runs: list[dict]) -> dict:
    """A stress cell over several training seeds: mean score / success (the keys of one run), their
    spread, and each seed's result."""
    a = aggregate([{"seed": i, **r} for i, r in enumerate(runs)])
    return {"score": a["score_mean"], "success": a["success_mean"], "score_std": a["score_std"],
            "success_std": a["success_std"], "episodes": runs[0]["episodes"], "per_seed": a["seeds"]}


def stress_losses(by_k: dict[str, dict]) -> dict[str, tuple[float, float]]:
    """Score lost against delay 0 in one stress row (``{"<k>": cell}``), per training seed: for
    each delay k > 0 and for their mean ("mean"), (mean, std) over the seeds of
    score(0) - score(k); "per_seed": each seed's mean over the delays. A cell without
    ``per_seed`` is one seed (std 0)."""
    def scores(cell: dict) -> np.ndarray:
        return np.array([r["score"] for r in cell.get("per_seed", [cell])])

    base = scores(by_k["0"])
    lost = {str(k): base - scores(by_k[str(k)]) for k in STRESS_DELAYS if k > 0}
    out = {k: mean_std(v) for k, v in lost.items()}
    per_seed = np.mean(list(lost.values()), axis=0)
    out["mean"] = mean_std(per_seed)
    out["per_seed"] = tuple(float(v) for v in per_seed)
    return out


def _cell(r: dict) -> str:
    spread = f"±{r['score_std']:.3f}" if "score_std" in r else ""
    return f"{r['score']:.3f}{spread}/{r['success']:.2f}"


def results_table(doc: dict) -> str:
    """Plain-text tables: methods (score / success mean ± std over seeds) and the stress tests."""
    rows = []
    for name in (*METHODS, "sfp_reanchor1", "sfp_reanchor8"):  # reanchor8: older JSON files
        r = doc.get(name) or doc["variants"].get(name)
        if r is None:
            continue
        rows.append([name, f"{r['score_mean']:.3f} ± {r['score_std']:.3f}",
                     f"{r['success_mean']:.2f} ± {r['success_std']:.2f}", len(r["seeds"])])
    rows.append(["random", f"{doc['random']['score']:.3f}", f"{doc['random']['success']:.2f}", "-"])
    ex = doc["expert"]
    rows.append(["expert (demo seeds)", "-", f"{ex.get('expert_success_rate', float('nan')):.2f}", "-"])
    if "eval_seeds" in ex:
        rows.append(["expert (eval seeds)", f"{ex['eval_seeds']['score']:.3f}", f"{ex['eval_seeds']['success']:.2f}", "-"])
    out = [format_table(["method", "score", "success", "seeds"], rows)]
    st = doc["stress"]
    srows = [[m, *(_cell(st["delay"][m][str(k)]) for k in STRESS_DELAYS), _cell(st["rate5x"][m])] for m in st["delay"]]
    for m, by_k in st.get("delay_comp", {}).items():  # absent in older JSON files
        srows.append([f"{m} (latency comp.)", *(_cell(by_k[str(k)]) for k in STRESS_DELAYS), "-"])
    if not srows:  # run with stress_episodes 0
        return out[0]
    seeds = st.get("seeds", [st.get("seed", 0)])
    rate_seeds = len(next(iter(st["rate5x"].values())).get("per_seed", [None]))  # older files: seed 0
    head = (f"stress (training seeds {','.join(map(str, seeds))}"
            f"{'' if rate_seeds == len(seeds) else '; 5x rate: seed 0'}): score/success")
    out.append(format_table([head, *(f"delay {k}" for k in STRESS_DELAYS), "5x rate"], srows))
    lrows = []
    for kind, label in (("delay", ""), ("delay_comp", " (latency comp.)")):
        for m, by_k in st.get(kind, {}).items():
            lost = stress_losses(by_k)
            per_seed = lost.pop("per_seed")
            lrows.append([m + label, *(f"{mean:.3f}±{sd:.3f}" for mean, sd in lost.values()),
                          ", ".join(f"{v:.3f}" for v in per_seed)])
    out.append(format_table(["score lost vs delay 0 (mean±std over seeds)",
                             *(f"delay {k}" for k in STRESS_DELAYS if k > 0), "mean", "mean per seed"], lrows))
    return "\n\n".join(out)


def _recipe_label(method: str, settings: dict) -> str:
    """The training recipe of one ``run``'s methods, as a table cell."""
    parts = [f"{settings['train_steps']:,} steps"]
    if method in ("sfp", "sfp_k0"):
        fs = settings.get("flow_samples", 1)
        parts.append(f"{fs} flow draw{'s' if fs > 1 else ''} per window")
        parts.append(f"k {0 if method == 'sfp_k0' else settings.get('sfp_k', SFP_K):g}")
    elif method in settings.get("samplers", {}):  # as the run recorded it: "DDIM 10", "Euler 10", ...
        parts.append(f"{settings['samplers'][method]} steps")
    return ", ".join(parts)


def merge_runs(docs: list[dict]) -> dict:
    """One document from several ``run`` JSONs of disjoint methods on one task (say SFP with its
    own step count and the U-Nets with theirs): their methods and variants side by side, the
    random and expert rows and settings of the first. Refuses a method two of them ran, or
    runs on different tasks, datasets or evaluation episodes."""
    if not docs:
        raise ValueError("no run JSON given")
    out: dict = {"variants": {}, "stress": {"delay": {}, "delay_comp": {}, "rate5x": {}}}
    tasks = {d["settings"].get("task", "state") for d in docs}
    evals = {(d["settings"]["episodes"], d["settings"]["max_steps"], d["settings"].get("dataset")) for d in docs}
    if len(tasks) > 1 or len(evals) > 1:
        raise ValueError(f"the runs differ in task {sorted(tasks)} or (episodes, step limit, dataset) {sorted(evals)}")
    for d in docs:
        for m in METHODS:
            if m in d:
                if m in out:
                    raise ValueError(f"{m} is in more than one run: merge runs of disjoint methods")
                out[m] = {**d[m], "recipe": _recipe_label(m, d["settings"])}
        for name, v in d.get("variants", {}).items():
            out["variants"][name] = {**v, "recipe": _recipe_label("sfp", d["settings"])}
        for kind in ("delay", "delay_comp", "rate5x"):
            out["stress"][kind].update(d.get("stress", {}).get(kind, {}))
    first = docs[0]
    out.update(random=first["random"], expert=first["expert"], settings=first["settings"])
    out["seconds"] = sum(d.get("seconds", 0.0) for d in docs)
    return out


def render_runs(docs: list[dict]) -> str:
    """Markdown of one or more ``run`` JSONs (see ``merge_runs``): per method its training recipe,
    parameters, training wall time, score (mean ± std over training seeds, each seed's value) and
    strict success; SFP's re-anchor-at-every-observation variant; the random and expert floors."""
    doc = merge_runs(docs)
    out = [("| method | training | parameters | training time (s, mean over seeds) | score (per seed) "
           "| strict success | episodes per seed |"), "|---|---|---|---|---|---|---|"]

    def row(label: str, r: dict, params: str) -> str:
        per = " / ".join(f"{s['score']:.3f}" for s in r["seeds"])
        train = [s["train"]["seconds"] for s in r["seeds"] if "train" in s]
        t = f"{np.mean(train):,.0f}" if train else "(the sfp row's)"
        eps = sorted({s["episodes"] for s in r["seeds"]})
        return (f"| {label} | {r['recipe']} | {params} | {t} | {r['score_mean']:.3f} ± {r['score_std']:.3f} ({per}) "
                f"| {r['success_mean']:.2f} ± {r['success_std']:.2f} | {'/'.join(map(str, eps))} |")

    for m in METHODS:
        if m in doc:
            out.append(row(m, doc[m], f"{doc[m]['params']['total'] / 1e6:.3f} M"))
    for name, r in doc["variants"].items():
        out.append(row(name, r, "(the sfp row's)"))
    ex = doc["expert"].get("eval_seeds", {})
    out.append(f"| random | - | - | - | {doc['random']['score']:.3f} | {doc['random']['success']:.2f} "
               f"| {doc['random']['episodes']} |")
    if ex:
        out.append(f"| expert (scripted) | - | - | - | {ex['score']:.3f} | {ex['success']:.2f} | {ex['episodes']} |")
    s = doc["settings"]
    walls = " and ".join(f"{d.get('seconds', 0.0):,.0f} s" for d in docs)
    threads = {1 if d["settings"].get("jobs", 1) > 1 else d["settings"].get("threads", 0) for d in docs}
    per = ("one torch thread" if threads == {1} else
           "torch threads " + "/".join("default" if t == 0 else str(t) for t in sorted(threads)))
    out += ["", (f"Evaluation seeds 0..{s['episodes'] - 1}, {s['max_steps']} steps per episode; {s['demos']} demos; "
            f"batch {s['batch_size']}, lr {s['lr']:g}; training time is wall seconds per training, {per}. "
            f"Wall time of the run{'s' if len(docs) > 1 else ''}: {walls}.")]
    return "\n".join(out)
