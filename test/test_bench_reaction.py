"""`sfp bench reaction --quick` on untrained Push-T checkpoints: the two rollouts agree up to the
perturbation (the reaction criterion depends on it), and the JSON has every field per method."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from streaming_flow_ros.bench import reaction
from streaming_flow_ros.bench.pusht.env import pusht_spec
from streaming_flow_ros.checkpoint import make_untrained_checkpoint


def test_quick_reaction_run(tmp_path, monkeypatch):
    ck = make_untrained_checkpoint(tmp_path / "sfp.safetensors", pusht_spec("state"))
    monkeypatch.setattr(reaction, "AFTER_S", 1.0)  # short perturbed tails keep the test fast
    out = tmp_path / "r.json"
    parser = __import__("argparse").ArgumentParser()
    reaction.configure(parser)
    assert reaction.run(parser.parse_args(["--checkpoint", f"sfp={ck}", "--quick", "--json", str(out)])) == 0
    doc = json.loads(out.read_text())
    assert set(doc["methods"]) == {"sfp", "sfp_horizon"}
    for per in doc["methods"].values():
        assert set(per) == {"0.0", "0.2"}
        for s in per.values():
            assert 0 < s["reaction_ms_p50"] <= reaction.NO_REACTION_S * 1e3
            assert {"reaction_ms_p90", "success_after_perturbation", "jerk_rms", "seam_jerk_rms"} <= set(s)
    # with 0.2 s of observation delay no method can react before the delayed frame shows the change
    assert doc["methods"]["sfp"]["0.2"]["reaction_ms_p50"] >= 200


def test_perturbation_is_seeded_and_bounded():
    k, shift, turn = reaction.perturbation(3)
    k2, shift2, turn2 = reaction.perturbation(3)
    assert k == k2 and np.array_equal(shift, shift2) and turn == turn2
    assert 30 <= k < 60 and 40 <= np.linalg.norm(shift) <= 80 and abs(turn) <= 0.5
