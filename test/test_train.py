"""Real torch training on tiny synthetic episodes: loss goes down, checkpoints load, resume
continues, EMA/schedule behave, and DistributedDataParallel runs under torchrun (2 processes)."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _core_helpers import tiny_dataset, tiny_spec

from streaming_flow_ros.checkpoint import read_checkpoint
from streaming_flow_ros.nets.model import ModelConfig, SFPModel
from streaming_flow_ros.policy.protocol import Observation, RuntimeConfig
from streaming_flow_ros.policy.streaming import load_policy
from streaming_flow_ros.train.config import TrainConfig
from streaming_flow_ros.train.pipeline import train_from_dataset
from streaming_flow_ros.train.trainer import EMA, cosine_with_warmup

SMALL = ModelConfig(hidden=64, depth=2, image_channels=(8, 16), num_keypoints=8, image_feat_dim=16)


def cfg(**kw):
    base = {"steps": 60, "batch_size": 32, "lr": 1e-3, "warmup_steps": 5, "save_every": 30, "eval_every": 30,
            "progress": False, "model": SMALL}
    base.update(kw)
    return TrainConfig(**base)


def test_train_loss_decreases_and_checkpoint_runs(tmp_path):
    ds = tiny_dataset(tmp_path / "ds")
    path, res = train_from_dataset(ds, tmp_path / "run", cfg(steps=150))
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"]
    assert res.val_loss is not None and math.isfinite(res.val_loss)
    ck = read_checkpoint(path)
    assert ck.train["step"] == 150 and ck.train["episodes_val"] == 1
    p = load_policy(path, RuntimeConfig())
    o = Observation(np.zeros((2, 3)), {"camera": np.zeros((2, 24, 24, 3), np.uint8)})
    p.reset(np.zeros(3))
    p.start(p.prepare(o))
    assert np.isfinite(p.step().action).all()


def test_resume_continues_from_saved_step(tmp_path):
    ds = tiny_dataset(tmp_path / "ds", cameras=False)
    train_from_dataset(ds, tmp_path / "run", cfg(steps=30))
    train_from_dataset(ds, tmp_path / "run", cfg(steps=60))
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [30, 50, 60]  # second run started at 30, not 0
    assert read_checkpoint(tmp_path / "run" / "policy.safetensors").train["step"] == 60
    st = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)  # tensors only, no pickle code
    assert int(st["step"]) == 60


def test_resume_refuses_another_config(tmp_path):
    """A train_state.pt from a run with another lr / model must not silently seed a new run."""
    ds = tiny_dataset(tmp_path / "ds", cameras=False)
    train_from_dataset(ds, tmp_path / "run", cfg(steps=30))
    with pytest.raises(ValueError, match=r"different training config.*'lr'"):
        train_from_dataset(ds, tmp_path / "run", cfg(steps=60, lr=3e-4))
    with pytest.raises(ValueError, match="model"):
        train_from_dataset(ds, tmp_path / "run", cfg(steps=60, model=ModelConfig(hidden=32, depth=2)))
    _, res = train_from_dataset(ds, tmp_path / "run", cfg(steps=60, lr=3e-4), resume=False)  # explicit restart
    assert res.steps == 60


def test_ema_and_schedule():
    m = torch.nn.Linear(2, 2)
    ema = EMA(m, power=0.75)
    assert ema.decay() == 0.0
    ema.update(m)
    assert ema.decay() == pytest.approx(1 - 2**-0.75)
    assert cosine_with_warmup(0, 10, 100) == pytest.approx(0.1)
    assert cosine_with_warmup(10, 10, 100) == pytest.approx(1.0)
    assert cosine_with_warmup(100, 10, 100) == pytest.approx(0.0, abs=1e-12)


def test_config_yaml_round_trip(tmp_path):
    import yaml

    c = cfg()
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(c.to_dict()))
    assert TrainConfig.from_yaml(tmp_path / "c.yaml").to_dict() == c.to_dict()
    (tmp_path / "bad.yaml").write_text("steps: 10\nbogus: 1\n")
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")
    from streaming_flow_ros.baselines.train import BaselineTrainConfig

    configs = sorted(Path(__file__).parents[1].glob("config/train/*.yaml"))
    assert len(configs) >= 5
    for f in configs:  # every shipped config is valid (baseline configs by their model kind)
        kind = (yaml.safe_load(f.read_text()).get("model") or {}).get("kind", "sfp")
        (TrainConfig if kind == "sfp" else BaselineTrainConfig).from_yaml(f)


def test_ddp_with_two_processes(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    ds = tiny_dataset(tmp_path / "ds", cameras=False)
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg(steps=20).to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000),
         "-m", "streaming_flow_ros.train.cli", "--dataset", str(ds), "--out", str(tmp_path / "run"),
         "--config", str(tmp_path / "c.yaml"), "--no-progress"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "checkpoint:" in r.stdout and r.stdout.count("trained 20 steps") == 1  # rank 0 only
    ck = read_checkpoint(tmp_path / "run" / "policy.safetensors")
    assert ck.train["step"] == 20


def test_flow_samples_share_one_encoding_per_window():
    """ModelConfig.flow_samples K: each window is encoded once and K independent (t, noise) draws
    share its features -- the same loss as K copies of the window with one draw each (state-only
    model: the encoder draws nothing); 1 is the default and what a config without the key means."""
    assert ModelConfig().flow_samples == 1 and ModelConfig.from_checkpoint_dict({}).flow_samples == 1
    for bad in (0, 257, 2.5, True, "4"):
        with pytest.raises(ValueError, match="flow_samples"):
            ModelConfig(flow_samples=bad)
    spec, K, B = tiny_spec(cameras=False), 4, 5
    torch.manual_seed(0)
    many = SFPModel(ModelConfig(hidden=32, depth=2, flow_samples=K), spec)
    one = SFPModel(ModelConfig(hidden=32, depth=2), spec)
    one.load_state_dict(many.state_dict())
    batch = {"state_n": torch.randn(B, 2, spec.state_dim), "images": {}, "chunk_n": torch.randn(B, 17, spec.action_dim)}
    copies = {"state_n": batch["state_n"].repeat_interleave(K, 0), "images": {},
              "chunk_n": batch["chunk_n"].repeat_interleave(K, 0)}
    calls = []
    many.encoder.register_forward_hook(lambda _m, args, _out: calls.append(args[0].shape[0]))
    l_many = many.loss(batch, torch.Generator().manual_seed(3))
    l_one = one.loss(copies, torch.Generator().manual_seed(3))
    assert calls == [B]  # one encoder pass over the B windows
    assert torch.allclose(l_many, l_one, atol=1e-6)
    l_many.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in many.velocity.parameters())


def test_same_seed_same_weights(tmp_path):
    """`--seed` reproduces a training run: the initial weights come from the seed, not from
    whatever the process's global RNG held when the model was built (the image encoder included);
    another seed gives other weights."""
    ds = tiny_dataset(tmp_path / "ds")

    def weights(seed: int, run: str) -> dict[str, torch.Tensor]:
        torch.rand(seed + 7)  # the global RNG differs between the calls, as between processes
        path, _ = train_from_dataset(ds, tmp_path / run, cfg(steps=10, seed=seed), resume=False)
        return read_checkpoint(path).tensors

    a, b, c = weights(3, "a"), weights(3, "b"), weights(4, "c")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
