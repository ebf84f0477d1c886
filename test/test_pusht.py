"""Push-T (state) benchmark: the expert, the dataset it writes, the metric definitions, the
delay / control-rate semantics of the evaluation loop, and the quick end-to-end run's JSON.
Skipped when gym-pusht is not installed."""

import argparse
import json

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from streaming_flow_ros.bench.pusht import cli
from streaming_flow_ros.bench.pusht.collect import collect, run_expert
from streaming_flow_ros.bench.pusht.env import (
    ACTION_NAMES,
    STATE_NAMES,
    PushTState,
    wrap_angle,
)
from streaming_flow_ros.bench.pusht.evaluate import EvalSettings, rollout
from streaming_flow_ros.bench.pusht.metrics import (
    episode_score,
    episode_success,
    mean_std,
    summarize,
)
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

    def __init__(self):
        self.seen, self.steps, self._a = [], 0, None

    def prepare(self, obs):
        return obs

    def reset(self, action):
        self._a = np.asarray(action, float)

    def start(self, plan, measured_state=None, anchor=None, now=None):
        self.seen.append((self.steps, plan.state.copy()))

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
    assert set(doc["stress"]["delay"]) == {"sfp", "dp_ddim"} and set(doc["stress"]["delay"]["sfp"]) == {"0", "1", "2", "4"}
    assert set(doc["stress"]["rate5x"]) == {"sfp", "dp_ddim"}
    assert doc["expert"]["expert_success_rate"] > 0 and doc["settings"]["seeds"] == 1
    assert 0 <= doc["expert"]["eval_seeds"]["score"] <= 1
    from streaming_flow_ros.cli import main as sfp_main

    none = tmp_path / "none.json"
    assert sfp_main(["bench", "plot", "--pusht", str(out), "--latency", str(none), "--sim", str(none),
                     "--out", str(tmp_path / "img")]) == 0
    assert (tmp_path / "img" / "pusht.png").stat().st_size > 5000
