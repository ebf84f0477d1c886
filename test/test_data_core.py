"""Windowing/time-grid alignment, normaliser round trips, dataset files."""

import json

import numpy as np
import pytest
import torch
from _core_helpers import tiny_dataset, tiny_episodes, tiny_spec

from streaming_flow_ros.data.episodes import load_dataset
from streaming_flow_ros.data.normalizer import MinMaxNormalizer
from streaming_flow_ros.data.windows import WindowDataset, split_episodes, window_indices


def test_window_indices_pad_at_edges():
    obs, act = window_indices(5, obs_horizon=2, pred_horizon=3)
    assert obs.tolist() == [[0, 0], [0, 1], [1, 2], [2, 3], [3, 4]]
    assert act.tolist() == [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 4], [3, 4, 4, 4], [4, 4, 4, 4]]


def test_chunk_first_waypoint_is_action_at_newest_observation():
    eps = tiny_episodes(2, n=12, cameras=False)
    ident = MinMaxNormalizer.identity(3)
    ds = WindowDataset(eps, [], obs_horizon=2, pred_horizon=4, state_norm=ident, action_norm=ident)
    b = ds.batch(np.array([5]))
    assert torch.allclose(b.state_n[0, -1], torch.as_tensor(eps[0].state[5]))
    assert torch.allclose(b.state_n[0, 0], torch.as_tensor(eps[0].state[4]))
    # waypoint j of the chunk is j data periods after the newest observation
    for j in range(5):
        assert torch.allclose(b.chunk_n[0, j], torch.as_tensor(eps[0].action[5 + j]))
    # windows never cross episodes: the second episode's first window starts at its own sample 0
    b = ds.batch(np.array([12]))
    assert torch.allclose(b.chunk_n[0, 0], torch.as_tensor(eps[1].action[0]))
    assert torch.allclose(b.state_n[0, 0], torch.as_tensor(eps[1].state[0]))


def test_normalizer_round_trip_and_range():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4)) * [1, 10, 0.1, 0]  # last dim constant
    n = MinMaxNormalizer.fit(x)
    xn = n.normalize(x)
    assert xn.min() >= -1 - 1e-12 and xn.max() <= 1 + 1e-12
    assert np.allclose(xn[:, 3], 0.0)
    assert np.allclose(n.unnormalize(xn), x)
    t = torch.as_tensor(x, dtype=torch.float64)
    assert torch.allclose(n.unnormalize(n.normalize(t)), t)
    n2 = MinMaxNormalizer.from_dict(json.loads(json.dumps(n.to_dict())), 4)
    assert np.allclose(n2.normalize(x), xn)
    with pytest.raises(ValueError):
        MinMaxNormalizer.from_dict({"center": [0.0], "scale": [0.0]})
    with pytest.raises(ValueError):
        MinMaxNormalizer.fit(np.array([[np.nan]]))


def test_dataset_round_trip_and_rejection(tmp_path):
    tiny_dataset(tmp_path / "ds")
    spec, eps = load_dataset(tmp_path / "ds")
    assert spec == tiny_spec() and len(eps) == 6 and eps[0].images["camera"].dtype == np.uint8
    (tmp_path / "ds" / "episode_00000.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="episode_00000"):
        load_dataset(tmp_path / "ds")
    with pytest.raises(ValueError, match="dataset.json"):
        load_dataset(tmp_path / "nothing")


def test_split_is_by_episode_and_disjoint():
    tr, va = split_episodes(20, 0.1, seed=3)
    assert len(va) == 2 and not set(tr) & set(va) and sorted(tr + va) == list(range(20))
