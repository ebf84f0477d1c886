"""Push-T benchmark (state T2 and pixels T3): the expert, the datasets it writes, the metric
definitions, the delay / control-rate semantics of the evaluation loop, and the quick end-to-end
runs' JSON. Skipped when gym-pusht is not installed."""

import argparse
import json

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from streaming_flow_ros.bench.plots import plot_pusht
from streaming_flow_ros.bench.pusht import cli
from streaming_flow_ros.bench.pusht.collect import collect, run_expert
from streaming_flow_ros.bench.pusht.env import (
    ACTION_NAMES,
    CAMERA,
    STATE_NAMES,
    PushTState,
    pusht_spec,
    wrap_angle,
)
from streaming_flow_ros.bench.pusht.evaluate import (
    EvalSettings,
    default_reanchor,
    rollout,
    runtime_config,
)
from streaming_flow_ros.bench.pusht.methods import METHODS
from streaming_flow_ros.bench.pusht.metrics import (
    episode_score,
    episode_success,
    mean_std,
    summarize,
)
from streaming_flow_ros.bench.pusht.run import merge_runs, render_runs, results_table, stress_losses
from streaming_flow_ros.checkpoint import read_checkpoint
from streaming_flow_ros.data.episodes import load_dataset
from streaming_flow_ros.policy.protocol import StepResult


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expert_succeeds(seed):
    run = run_expert(PushTState(), seed)
    assert run.success and run.coverage[-1] > 0.95
    assert len(run.state) == len(run.action) == len(run.coverage) + 1 <= 301


def test_dataset_validates(tmp_path):
    stats = collect(tmp_path / "ds", 2)
    assert stats["episodes"] == 2 and 0 < stats["expert_success_rate"] <= 1
    spec, episodes = load_dataset(tmp_path / "ds")
    assert spec.state_names == STATE_NAMES and spec.action_names == ACTION_NAMES
    assert spec.data_rate_hz == 10 and spec.action_lower == (0.0, 0.0) and spec.action_upper == (512.0, 512.0)
    for ep in episodes:
        assert np.all((ep.action >= 0) & (ep.action <= 512))
        # action[i] is the target in force at observation i: the first is where the agent rests
        np.testing.assert_allclose(ep.action[0], ep.state[0, :2], atol=1e-3)
        assert np.all(np.abs(ep.state[:, 4] - np.pi / 4) <= np.pi + 1e-5)
        np.testing.assert_allclose(np.diff(ep.time), 0.1)


def test_metric_definitions():
    assert episode_score([0.0, 0.5, 0.2]) == pytest.approx(0.5 / 0.95)
    assert episode_score([0.3, 0.99]) == 1.0  # clipped
    assert episode_score([]) == 0.0
    assert not episode_success([0.2, 0.95])  # strict: exactly 0.95 is not a success...
    assert episode_score([0.2, 0.95]) == pytest.approx(1.0)  # ...but already scores 1
    assert episode_success([0.96, 0.1])  # the max over the episode counts
    s = summarize([[0.95], [0.951], [0.0, 0.475]])
    assert s["score"] == pytest.approx((1 + 1 + 0.5) / 3) and s["success"] == pytest.approx(1 / 3)
    assert mean_std([1.0]) == (1.0, 0.0) and mean_std([0.0, 1.0]) == (0.5, 0.5)
    # the angle's branch cut sits opposite the goal (pi/4): range [pi/4 - pi, pi/4 + pi)
    assert wrap_angle(2 * np.pi - 0.1) == pytest.approx(-0.1) and wrap_angle(4.0) == pytest.approx(4.0 - 2 * np.pi)
    assert wrap_angle(0.0) == 0.0 and wrap_angle(np.pi) == pytest.approx(np.pi)
    with pytest.raises(ValueError):
        episode_score([float("nan")])


class _Recorder:
    """A RuntimePolicy that holds still and records which observations it was given."""

    obs_horizon = 2

    def __init__(self, task="state"):
        self.spec = pusht_spec(task)
        self.seen, self.steps, self._a, self.images, self.ages = [], 0, None, [], []

    def prepare(self, obs):
        return obs

    def reset(self, action):
        self._a = np.asarray(action, float)

    def start(self, plan, measured_state=None, anchor=None, now=None):
        self.seen.append((self.steps, plan.state.copy()))
        self.ages.append(None if now is None else now - plan.stamp)
        self.images.append({k: v.copy() for k, v in plan.images.items()})

    def step(self):
        self.steps += 1
        return StepResult(self._a.copy(), 0.0, False)


class _Env(PushTState):
    """Observation i = (i, i, i, i, i) so the test can read which step an observation is from."""

    def __init__(self):
        self.i = 0

    def reset(self, seed):
        self.i = 0
        return np.full(5, 0.0)

    def step(self, action):
        self.i += 1
        from streaming_flow_ros.bench.pusht.env import StepOut

        return StepOut(np.full(5, float(self.i)), 0.0, 0.0, False)

    def render(self):
        return np.full((96, 96, 3), self.i, np.uint8)


def test_every_method_replans_after_the_action_horizon():
    """SFP integrates its flow over the action horizon before re-anchoring, as the chunk methods
    execute theirs (the paper's setting); re-anchoring at every observation is only a variant."""
    assert {m: default_reanchor(m) for m in METHODS} == dict.fromkeys(METHODS, 8)
    with pytest.raises(ValueError, match="unknown method"):
        default_reanchor("dp")


@pytest.mark.parametrize(("delay", "mult", "reanchor"), [(0, 1, 1), (2, 1, 1), (0, 1, 8), (0, 5, 1), (4, 1, 8)])
def test_rollout_delay_and_rate(delay, mult, reanchor):
    pol = _Recorder()
    cov = rollout(pol, _Env(), 0, EvalSettings(episodes=1, max_steps=20, delay=delay, control_mult=mult,
                                                  reanchor_every=reanchor))
    assert len(cov) == 20 * mult
    assert [s for s, _ in pol.seen] == list(range(0, 20 * mult, mult * reanchor))
    for step, state in pol.seen:
        newest = max(0, step - delay)
        assert state[:, 0].tolist() == [max(0, newest - mult), newest]  # T_o = 2 at the data rate


@pytest.mark.parametrize("comp", [False, True])
def test_latency_comp_passes_now_so_the_plan_knows_its_age(comp):
    """start() gets now = the control step's time (the node's loop always passes it), so the
    observation's age (now - stamp) is exactly the injected delay; whether a method compensates
    it is the runtime's skip_elapsed, which latency_comp sets."""
    pol = _Recorder()
    rollout(pol, _Env(), 0, EvalSettings(episodes=1, max_steps=20, delay=3, reanchor_every=2, latency_comp=comp))
    ages = pol.ages[2:]  # the first observations are clamped at step 0 (younger than the delay)
    assert ages and all(a == pytest.approx(3 / 10) for a in ages)
    assert runtime_config("sfp", 10.0, latency_comp=comp).skip_elapsed is comp


@pytest.mark.parametrize(("delay", "mult"), [(0, 1), (2, 1), (0, 5)])
def test_pixel_rollout_pairs_each_frame_with_its_state(delay, mult):
    """T3: the policy gets the agent position (D_s = 2) and the frames rendered at the same
    moments as those states, under delay and sub-stepping alike."""
    pol = _Recorder("pixels")
    rollout(pol, _Env(), 0, EvalSettings(episodes=1, max_steps=12, delay=delay, control_mult=mult))
    assert pol.seen and all(state.shape == (2, 2) for _, state in pol.seen)
    for (_, state), images in zip(pol.seen, pol.images):
        assert set(images) == {CAMERA} and images[CAMERA].shape == (2, 96, 96, 3)
        assert images[CAMERA][:, 0, 0, 0].tolist() == state[:, 0].tolist()  # frame k <-> state k


def test_pixel_dataset_is_the_state_dataset_re_rendered(tmp_path):
    """T3 demos are the T2 demos (same seeds, same actions and agent path) plus frames."""
    collect(tmp_path / "state", 1)
    stats = collect(tmp_path / "pixels", 1, task="pixels")
    assert stats["task"] == "pixels"
    _, (s_ep,) = load_dataset(tmp_path / "state")
    p_spec, (p_ep,) = load_dataset(tmp_path / "pixels")
    assert p_spec.state_names == STATE_NAMES[:2] and [c.name for c in p_spec.cameras] == [CAMERA]
    np.testing.assert_array_equal(p_ep.action, s_ep.action)
    np.testing.assert_array_equal(p_ep.state, s_ep.state[:, :2])
    frames = p_ep.images[CAMERA]
    assert frames.shape == (len(p_ep), 96, 96, 3) and frames.dtype == np.uint8
    assert not np.array_equal(frames[0], frames[-1])  # the scene changes as the block is pushed
    env = PushTState()
    env.reset(1_000_000)
    np.testing.assert_array_equal(env.render(), frames[0])  # the first frame is the start state


def test_quick_pixel_run(tmp_path, capsys):
    p = argparse.ArgumentParser()
    cli.configure(p)
    out = tmp_path / "pusht_pixels.json"
    assert cli.run(p.parse_args(["run", "--quick", "--task", "pixels", "--methods", "sfp,dp_ddim", "--json", str(out),
                                 "--workdir", str(tmp_path / "w")])) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["task"] == "pixels" and doc["expert"]["task"] == "pixels"
    for m in ("sfp", "dp_ddim"):
        assert 0 <= doc[m]["score_mean"] <= 1 and doc[m]["params"]["encoder"] > 0, m
    from streaming_flow_ros.cli import main as sfp_main

    none = tmp_path / "none.json"
    assert sfp_main(["bench", "plot", "--pusht-pixels", str(out), "--pusht", str(none), "--latency", str(none),
                     "--sim", str(none), "--pusht-pixels-sfp", str(out), "--out", str(tmp_path / "img")]) == 0
    assert (tmp_path / "img" / "pusht_pixels.png").stat().st_size > 5000
    assert not (tmp_path / "img" / "pusht.png").exists()
    # a state dataset in the same workdir is refused for the pixel task (and vice versa)
    with pytest.raises(ValueError, match="is for the 'pixels' task"):
        cli.run(p.parse_args(["run", "--quick", "--json", str(out), "--workdir", str(tmp_path / "w")]))


def test_quick_run_json(tmp_path, capsys):
    p = argparse.ArgumentParser()
    cli.configure(p)
    out = tmp_path / "pusht.json"
    assert cli.run(p.parse_args(["run", "--quick", "--json", str(out), "--workdir", str(tmp_path / "w")])) == 0
    doc = json.loads(out.read_text())
    assert "meaningless" in capsys.readouterr().out
    for m in ("sfp", "sfp_k0", "dp_ddim", "dp_ddpm", "fm_chunk"):
        assert {"score_mean", "score_std", "success_mean", "seeds"} <= set(doc[m]), m
        assert 0 <= doc[m]["score_mean"] <= 1 and doc[m]["params"]["total"] > 0
    assert {"random", "expert", "stress", "settings", "variants"} <= set(doc) and doc["quick"] is True
    assert set(doc["variants"]) == {"sfp_reanchor1"} and doc["settings"]["sfp"]["reanchor_every"] == 8
    assert doc["settings"]["lr"] == 1e-3
    assert json.loads((tmp_path / "w" / "seed0" / "sfp" / "train_summary.json").read_text())["lr"] == 1e-3
    assert set(doc["stress"]["delay"]) == {"sfp", "dp_ddim", "fm_chunk"} and set(doc["stress"]["delay"]["sfp"]) == {"0", "1", "2", "4"}
    assert set(doc["stress"]["rate5x"]) == {"sfp", "dp_ddim", "fm_chunk"}
    comp = doc["stress"]["delay_comp"]
    assert set(comp) == {"sfp", "dp_ddim", "fm_chunk"} and comp["sfp"]["0"] == doc["stress"]["delay"]["sfp"]["0"]
    assert "latency comp." in results_table(doc)
    assert doc["expert"]["expert_success_rate"] > 0 and doc["settings"]["seeds"] == 1
    assert 0 <= doc["expert"]["eval_seeds"]["score"] <= 1
    # --stress-seeds 2: a second SFP seed trains; each delay cell is the mean of seed 0 (cached) and seed 1
    out2 = tmp_path / "pusht2.json"
    seed0_cache = {f: f.stat().st_mtime_ns for f in (tmp_path / "w" / "eval").glob("sfp_seed0_*.json")}
    assert cli.run(p.parse_args(["run", "--quick", "--json", str(out2), "--workdir", str(tmp_path / "w"),
                                 "--methods", "sfp", "--seeds", "2", "--stress-seeds", "2", "--stress-methods", "sfp"])) == 0
    st2 = json.loads(out2.read_text())["stress"]
    assert st2["seeds"] == [0, 1] and set(st2["delay"]) == {"sfp"}
    for kind in ("delay", "delay_comp"):
        for k in ("0", "1", "2", "4"):
            c = st2[kind]["sfp"][k]
            assert [r["seed"] for r in c["per_seed"]] == [0, 1]
            assert c["score"] == pytest.approx(np.mean([r["score"] for r in c["per_seed"]]))
            assert c["score_std"] == pytest.approx(np.std([r["score"] for r in c["per_seed"]]))
            assert {n: c["per_seed"][0][n] for n in ("score", "success")} == \
                {n: doc["stress"][kind]["sfp"][k][n] for n in ("score", "success")}  # seed 0: the cached run
            # seed 1's cell is its own evaluation of its own checkpoint, cached under its name
            lc = "_lc" if kind == "delay_comp" and k != "0" else ""
            (seed1,) = (tmp_path / "w" / "eval").glob(f"sfp_seed1_*_e1_t40_d{k}_m1_r8_s0{lc}.json")
            assert {n: c["per_seed"][1][n] for n in ("score", "success")} == \
                {n: json.loads(seed1.read_text())[n] for n in ("score", "success")}
    assert all(f.stat().st_mtime_ns == t for f, t in seed0_cache.items())  # seed 0 was not re-evaluated
    assert (tmp_path / "w" / "seed1" / "sfp" / "policy.safetensors").is_file()
    # 5x rate: the same mean over the stress seeds, seed 0 from the cache, seed 1 its own run
    r5 = st2["rate5x"]["sfp"]
    assert [r["seed"] for r in r5["per_seed"]] == [0, 1]
    assert r5["score"] == pytest.approx(np.mean([r["score"] for r in r5["per_seed"]]))
    assert r5["per_seed"][0]["score"] == doc["stress"]["rate5x"]["sfp"]["score"]
    (seed1,) = (tmp_path / "w" / "eval").glob("sfp_seed1_*_e1_t40_d0_m5_r8_s0.json")
    assert r5["per_seed"][1]["score"] == json.loads(seed1.read_text())["score"]
    # the printed loss table: per seed, score at delay 0 minus score at delay k
    lost = stress_losses(st2["delay"]["sfp"])
    per = {k: np.array([r["score"] for r in st2["delay"]["sfp"][k]["per_seed"]]) for k in ("0", "1", "2", "4")}
    assert lost["4"] == pytest.approx((np.mean(per["0"] - per["4"]), np.std(per["0"] - per["4"])))
    assert lost["per_seed"] == pytest.approx(np.mean([per["0"] - per[k] for k in ("1", "2", "4")], axis=0))
    printed = capsys.readouterr().out
    assert "training seeds 0,1)" in printed and "score lost vs delay 0" in printed  # rate5x on both seeds
    _check_summarize_matches_run(p, tmp_path, st2, capsys)
    # two runs of disjoint methods (SFP alone with its own recipe, the U-Nets) render as one table
    doc2 = json.loads(out2.read_text())
    unets = {k: v for k, v in doc.items() if k not in ("sfp", "sfp_k0", "variants")}
    md = render_runs([doc2, unets])
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    assert {"sfp", "dp_ddim", "dp_ddpm", "fm_chunk", "sfp_reanchor1", "random", "expert (scripted)"} <= set(rows)
    assert f"{doc2['sfp']['score_mean']:.3f} ± {doc2['sfp']['score_std']:.3f}" in rows["sfp"]
    assert " / ".join(f"{s['score']:.3f}" for s in doc2["sfp"]["seeds"]) in rows["sfp"]  # both seeds
    assert f"{doc['fm_chunk']['score_mean']:.3f}" in rows["fm_chunk"] and "Euler 10 steps" in rows["fm_chunk"]
    assert "sfp_k0" not in rows  # not in either run
    with pytest.raises(ValueError, match="more than one run"):
        render_runs([doc2, doc])  # both ran sfp
    for change in ({"max_steps": 7}, {"dataset": "elsewhere"}):
        with pytest.raises(ValueError, match="differ in task"):
            render_runs([doc2, {**unets, "settings": {**unets["settings"], **change}}])
    assert "one torch thread" in md  # the quick runs train on one thread
    (tmp_path / "img_merged").mkdir()
    merge_plot = plot_pusht(merge_runs([doc2, unets]), tmp_path / "img_merged")
    assert merge_plot.name == "pusht.png" and merge_plot.stat().st_size > 5000
    with pytest.raises(ValueError, match="stress_seeds"):
        cli.run(p.parse_args(["run", "--quick", "--workdir", str(tmp_path / "w"), "--stress-seeds", "2"]))
    with pytest.raises(ValueError, match="stress_methods must be a subset"):  # dp_ddpm is not run here
        cli.run(p.parse_args(["run", "--quick", "--workdir", str(tmp_path / "w"), "--methods", "sfp",
                              "--stress-methods", "sfp,dp_ddpm"]))
    from streaming_flow_ros.cli import main as sfp_main

    none = tmp_path / "none.json"
    assert sfp_main(["bench", "plot", "--pusht", str(out), "--latency", str(none), "--sim", str(none),
                     "--pusht-pixels", str(none), "--pusht-equal-time", str(none), "--pusht-stress", str(none),
                     "--out", str(tmp_path / "img")]) == 0
    assert (tmp_path / "img" / "pusht.png").stat().st_size > 5000
    assert sfp_main(["bench", "plot", "--pusht", str(out), "--latency", str(none), "--sim", str(none),
                     "--pusht-pixels", str(none), "--pusht-equal-time", str(out), "--pusht-stress", str(none),
                     "--out", str(tmp_path / "img2")]) == 0  # the extra bar
    assert (tmp_path / "img2" / "pusht.png").stat().st_size > 5000
    assert sfp_main(["bench", "plot", "--pusht", str(out2), "--latency", str(none), "--sim", str(none),
                     "--pusht-pixels", str(none), "--pusht-equal-time", str(none), "--pusht-stress", str(out2),
                     "--out", str(tmp_path / "img3")]) == 0
    assert (tmp_path / "img3" / "pusht.png").stat().st_size > 5000  # stress of the 2-seed run, with whiskers
    # eval --integrator reaches the SFP runtime and the result records it
    ev = tmp_path / "eval_heun.json"
    assert cli.run(p.parse_args(["eval", "--checkpoint", str(tmp_path / "w" / "seed0" / "sfp" / "policy.safetensors"),
                                 "--episodes", "1", "--max-steps", "5", "--integrator", "heun",
                                 "--json", str(ev)])) == 0
    assert json.loads(ev.read_text())["settings"]["integrator"] == "heun"
    # a cached evaluation counts only if written after its checkpoint
    import os

    from streaming_flow_ros.bench.pusht.run import EvalTask, _eval_task

    ck = tmp_path / "w" / "seed0" / "sfp" / "policy.safetensors"
    task = EvalTask("probe", str(ck), "sfp", EvalSettings(episodes=1, max_steps=3, reanchor_every=8))
    cache = tmp_path / "ev" / task.cache_name()
    assert _eval_task((task, str(tmp_path / "ev")))["score"] <= 1.0 and cache.is_file()
    cache.write_text(json.dumps({"score": 7.0}))
    assert _eval_task((task, str(tmp_path / "ev")))["score"] == 7.0  # reused
    later = cache.stat().st_mtime + 10
    os.utime(ck, (later, later))  # the checkpoint was retrained after the evaluation
    assert _eval_task((task, str(tmp_path / "ev")))["score"] <= 1.0


def _check_summarize_matches_run(p, tmp_path, st2, capsys):
    """`summarize` over the run's per-seed evaluation files (seeds 0 and 1 of SFP) gives the
    run's own stress cells and losses, and refuses files that are not one recipe's seeds."""
    import shutil

    files = sorted((tmp_path / "w" / "eval").glob("sfp_seed[01]_*.json"))
    out = tmp_path / "summary.json"
    capsys.readouterr()
    assert cli.run(p.parse_args(["summarize", *map(str, files), "--json", str(out)])) == 0
    assert "score lost vs delay 0" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    episodes = st2["episodes"]
    cells = {c["label"]: c for c in doc["cells"] if c["episodes"] == episodes}
    for kind, suffix in (("delay", ""), ("delay_comp", " (latency comp.)")):
        for k in ("0", "1", "2", "4"):
            label = "sfp" if k == "0" else f"sfp delay {k}{suffix}"
            c, ref = cells[label], st2[kind]["sfp"][k]
            assert [r["seed"] for r in c["seeds"]] == [0, 1]
            assert c["score_mean"] == pytest.approx(ref["score"]) and c["score_std"] == pytest.approx(ref["score_std"])
            assert c["success_mean"] == pytest.approx(ref["success"])
        lost = doc["delay_loss"]["sfp" + suffix]
        for key, val in stress_losses(st2[kind]["sfp"]).items():
            assert lost[key] == pytest.approx(val), (kind, key)
    assert cells["sfp 5x rate"]["score_mean"] == pytest.approx(st2["rate5x"]["sfp"]["score"])
    main = [c for c in doc["cells"] if c["label"] == "sfp" and c["episodes"] != episodes]  # run's main evaluation
    assert main and doc["sfp"]["episodes"] == max(episodes, main[0]["episodes"])
    assert "sfp re-anchor every 1" in {c["label"] for c in doc["cells"]}  # the variant's files form their own cell
    # the figure of this summary: bars of the plain and 5x cells, the delay sweeps of the same cells
    from streaming_flow_ros.bench.plots import _summary_cells
    from streaming_flow_ros.cli import main as sfp_main

    by = _summary_cells(doc)["sfp"]
    assert by["plain"]["label"] == "sfp" and by["rate5x"]["label"] == "sfp 5x rate"
    assert by["delay"]["4"]["label"] == "sfp delay 4" and by["delay_comp"]["0"] is by["plain"]
    none = tmp_path / "none.json"
    assert sfp_main(["bench", "plot", "--pusht-pixels-stress", str(out), "--pusht", str(none), "--latency", str(none),
                     "--sim", str(none), "--pusht-pixels", str(none), "--out", str(tmp_path / "img_sum")]) == 0
    assert (tmp_path / "img_sum" / "pusht_pixels_stress.png").stat().st_size > 5000
    # refusals: one file twice, two recipes in one cell, a file that is not an eval result
    plain = [f for f in files if f"_e{episodes}_t40_d0_m1_r8_s0.json" in f.name]
    assert len(plain) == 2
    with pytest.raises(ValueError, match="already in the cell"):
        cli.run(p.parse_args(["summarize", str(plain[0]), str(plain[0])]))
    other = tmp_path / "other" / "sfp"
    shutil.copytree(tmp_path / "w" / "seed1" / "sfp", other)
    summary = json.loads((other / "train_summary.json").read_text())
    (other / "train_summary.json").write_text(json.dumps({**summary, "steps": summary["steps"] + 1}))
    ev = json.loads(plain[1].read_text())
    moved = tmp_path / "other.json"
    moved.write_text(json.dumps({**ev, "checkpoint": str(other / "policy.safetensors")}))
    with pytest.raises(ValueError, match="different training recipes"):
        cli.run(p.parse_args(["summarize", str(plain[0]), str(moved)]))
    bad = tmp_path / "bad.json"
    bad.write_text('{"score": 0.5}')
    with pytest.raises(ValueError, match="not an `sfp bench pusht eval --json` result"):
        cli.run(p.parse_args(["summarize", str(bad)]))
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable JSON file"):
        cli.run(p.parse_args(["summarize", str(bad)]))


def test_eval_integrator_setting():
    from streaming_flow_ros.bench.pusht.evaluate import runtime_config
    from streaming_flow_ros.bench.pusht.run import EvalTask

    assert runtime_config("sfp", 10.0).integrator == "euler"
    assert runtime_config("sfp", 10.0, integrator="midpoint").integrator == "midpoint"
    with pytest.raises(ValueError, match="integrator"):
        EvalSettings(integrator="rk4")
    euler, heun = (EvalTask("k", "c", "sfp", EvalSettings(integrator=i)).cache_name() for i in ("euler", "heun"))
    assert euler != heun and "_i" not in euler  # caches written before the option stay valid


def test_train_slot_cache_follows_the_model(tmp_path):
    """A finished training is reused only for the same model config; a summary written before
    the model was recorded counts as the SFP net without input conditioning (so SFP retrains)
    and as the unchanged U-Net (so DP is reused)."""
    from streaming_flow_ros.bench.pusht.methods import train_slot

    collect(tmp_path / "d", 1)
    for slot in ("sfp", "dp"):
        out = tmp_path / slot
        train_slot(tmp_path / "d", slot, out, steps=2, batch_size=8)
        summary = out / "train_summary.json"
        doc = json.loads(summary.read_text())
        assert doc["model"]["kind"] == ("sfp" if slot == "sfp" else "dp")
        doc.pop("model")
        doc["result"]["seconds"] = -1.0  # marks the old run
        summary.write_text(json.dumps(doc))
        _, info = train_slot(tmp_path / "d", slot, out, steps=2, batch_size=8)
        assert (info["seconds"] == -1.0) == (slot == "dp"), slot


def test_train_slot_reuses_runs_recorded_before_flow_samples(tmp_path):
    """A summary whose model has no ``flow_samples`` (written before it existed) trained with one
    draw per window: reused for flow_samples 1, retrained for another value."""
    from streaming_flow_ros.bench.pusht.methods import train_slot

    collect(tmp_path / "d", 1)
    out = tmp_path / "sfp"
    train_slot(tmp_path / "d", "sfp", out, steps=2, batch_size=8)
    summary = out / "train_summary.json"
    doc = json.loads(summary.read_text())
    assert doc["model"].pop("flow_samples") == 1
    doc["result"]["seconds"] = -1.0
    summary.write_text(json.dumps(doc))
    assert train_slot(tmp_path / "d", "sfp", out, steps=2, batch_size=8)[1]["seconds"] == -1.0
    _, info = train_slot(tmp_path / "d", "sfp", out, steps=2, batch_size=8, flow_samples=3)
    assert info["seconds"] > 0 and json.loads(summary.read_text())["model"]["flow_samples"] == 3


def test_train_slot_reuses_runs_recorded_before_a_model_key_with_its_default(tmp_path):
    """A summary written before a model key existed (``image_encoder``) stands for that key's
    default: the finished run is reused, not trained again."""
    from streaming_flow_ros.bench.pusht.methods import train_slot

    collect(tmp_path / "d", 1)
    out = tmp_path / "sfp"
    train_slot(tmp_path / "d", "sfp", out, steps=2, batch_size=8)
    summary = out / "train_summary.json"
    doc = json.loads(summary.read_text())
    assert doc["model"].pop("image_encoder") == "small"
    doc["result"]["seconds"] = -1.0
    summary.write_text(json.dumps(doc))
    assert train_slot(tmp_path / "d", "sfp", out, steps=2, batch_size=8)[1]["seconds"] == -1.0


def test_sfp_path_settings_reach_the_model_and_the_caches(tmp_path):
    """--sfp-k / --sfp-sigma0 set the sfp slot's path (sfp_k0 keeps k = 0), retrain a finished run
    with other values, and the defaults leave the checkpoints and evaluation caches of runs made
    before the options valid."""
    from streaming_flow_ros.bench.pusht.methods import SFP_K, SFP_SIGMA0, model_config, train_slot

    assert (model_config("sfp").k, model_config("sfp").sigma0) == (SFP_K, SFP_SIGMA0) == (15.0, 0.4)
    assert model_config("sfp", k=5.0, sigma0=0.1).k == 5.0 and model_config("sfp_k0", k=5.0, sigma0=0.1).k == 0.0
    assert model_config("sfp_k0", k=5.0, sigma0=0.1).sigma0 == 0.1
    collect(tmp_path / "d", 1)
    out = tmp_path / "sfp"
    train_slot(tmp_path / "d", "sfp", out, steps=2, batch_size=8)
    summary = out / "train_summary.json"
    doc = json.loads(summary.read_text())
    doc["result"]["seconds"] = -1.0  # marks the finished run
    summary.write_text(json.dumps(doc))
    assert train_slot(tmp_path / "d", "sfp", out, steps=2, batch_size=8, k=SFP_K, sigma0=SFP_SIGMA0)[1]["seconds"] == -1
    _, info = train_slot(tmp_path / "d", "sfp", out, steps=2, batch_size=8, k=5.0)
    assert info["seconds"] > 0  # retrained
    assert read_checkpoint(out / "policy.safetensors").model_config.k == 5.0
    p = argparse.ArgumentParser()
    cli.configure(p)
    doc_out = tmp_path / "k5.json"
    assert cli.run(p.parse_args(["run", "--quick", "--methods", "sfp", "--stress-episodes", "0", "--sfp-k", "5",
                                 "--sfp-sigma0", "0.2", "--json", str(doc_out), "--workdir", str(tmp_path / "w")])) == 0
    doc = json.loads(doc_out.read_text())
    assert doc["settings"]["sfp"]["k"] == 5.0 and doc["settings"]["sfp"]["sigma0"] == 0.2
    assert read_checkpoint(tmp_path / "w" / "seed0" / "sfp" / "policy.safetensors").model_config.k == 5.0
    names = [f.name for f in (tmp_path / "w" / "eval").glob("*.json")]
    assert names and all("_k5_sig0.2" in n for n in names)


def test_run_settings_are_checked_before_training(tmp_path, capsys):
    """Bad counts fail at once (not after an hour of training); --stress-episodes 0 runs no stress tests."""
    from dataclasses import replace

    from streaming_flow_ros.bench.pusht.run import RunSettings

    for field, bad in (("episodes", 0), ("max_steps", 0), ("train_steps", 0), ("stress_episodes", -1),
                       ("ddpm_episodes", 0), ("flow_samples", 0), ("sfp_k", -1.0), ("sfp_sigma0", float("nan"))):
        with pytest.raises(ValueError, match=field):
            replace(RunSettings.quick(), **{field: bad})
    p = argparse.ArgumentParser()
    cli.configure(p)
    out = tmp_path / "nostress.json"
    assert cli.run(p.parse_args(["run", "--quick", "--methods", "sfp,dp_ddim", "--stress-episodes", "0",
                                 "--json", str(out), "--workdir", str(tmp_path / "w")])) == 0
    doc = json.loads(out.read_text())
    assert doc["stress"]["delay"] == {} and doc["stress"]["rate5x"] == {} and doc["stress"]["episodes"] == 0
    assert 0 <= doc["sfp"]["score_mean"] <= 1 and 0 <= doc["dp_ddim"]["score_mean"] <= 1
    printed = capsys.readouterr().out
    assert "sfp" in printed and "stress" not in printed
    assert not [f for f in (tmp_path / "w" / "eval").glob("*.json") if "_d1_" in f.name or "_m5_" in f.name]
