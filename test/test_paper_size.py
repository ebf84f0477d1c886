"""Paper-size networks: the ResNet-18 (GroupNorm) image trunk, the velocity-net size presets,
and their checkpoints (safetensors + JSON, like every other)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streaming_flow_ros.checkpoint import make_untrained_checkpoint, read_checkpoint
from streaming_flow_ros.nets.encoders import ImageEncoder
from streaming_flow_ros.nets.model import VELOCITY_SIZES, ModelConfig
from streaming_flow_ros.nets.resnet import ResNet18Trunk
from streaming_flow_ros.spec import CameraSpec, IOSpec


def test_resnet18_trunk_has_torchvisions_layout_with_groupnorm():
    trunk = ResNet18Trunk(3)
    # torchvision's resnet18 has 11,689,512 parameters, 513,000 of them in the classifier; a
    # GroupNorm has the same affine parameters as the BatchNorm it replaces
    assert sum(p.numel() for p in trunk.parameters()) == 11_689_512 - 513_000
    norms = [m for m in trunk.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 20 and all(m.num_groups == m.num_channels // 16 for m in norms)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in trunk.modules())
    convs = [m for m in trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 20  # 1 stem + 16 in blocks + 3 shortcuts
    with torch.inference_mode():
        assert trunk(torch.zeros(2, 3, 84, 84)).shape == (2, 512, 3, 3)


def test_resnet18_image_encoder_features_and_crop():
    cam = CameraSpec("cam", 96, 96, 3)
    enc = ImageEncoder(cam, num_keypoints=32, out_dim=64, crop_frac=0.875, trunk="resnet18").eval()
    assert (enc.crop_h, enc.crop_w) == (84, 84)  # Diffusion Policy's 84 of 96
    img = torch.randint(0, 255, (2, 96, 96, 3), dtype=torch.uint8)
    with torch.inference_mode():
        f = enc(img)
    assert f.shape == (2, 64) and torch.isfinite(f).all()
    small = ImageEncoder(CameraSpec("s", 40, 40, 3), num_keypoints=4, out_dim=8, trunk="resnet18").train()
    small(img[:1, :40, :40]).square().mean().backward()
    assert all(p.grad is not None for p in small.parameters())  # trainable end to end
    with pytest.raises(ValueError, match="image encoder"):
        ImageEncoder(cam, trunk="resnet50")


@pytest.mark.parametrize("size", sorted(VELOCITY_SIZES))
def test_size_presets_set_hidden_and_depth(size):
    cfg = ModelConfig.from_dict({"size": size})
    hidden, depth = VELOCITY_SIZES[size]
    assert (cfg.hidden, cfg.depth) == (hidden, depth)
    blocks = depth * 2 * hidden * hidden  # what one pass multiplies
    assert abs(blocks / (int(size[:-1]) * 2**20) - 1) < 0.1
    assert "size" not in cfg.to_dict() and ModelConfig.from_dict(cfg.to_dict()) == cfg  # saved expanded
    assert ModelConfig.from_dict({"size": size, "hidden": hidden}).hidden == hidden


def test_size_preset_conflicts_and_unknown_names_are_refused():
    with pytest.raises(ValueError, match="size '64m' means hidden 2048"):
        ModelConfig.from_dict({"size": "64m", "hidden": 256})
    with pytest.raises(ValueError, match="size must be one of"):
        ModelConfig.from_dict({"size": "huge"})
    with pytest.raises(ValueError, match="image_encoder"):
        ModelConfig(image_encoder="vit")
    assert ModelConfig.from_checkpoint_dict({k: v for k, v in ModelConfig().to_dict().items()
                                             if k != "image_encoder"}).image_encoder == "small"


def test_resnet18_checkpoint_round_trip_and_runtime(tmp_path):
    from streaming_flow_ros.policy.protocol import Observation, RuntimeConfig
    from streaming_flow_ros.policy.streaming import load_policy

    spec = IOSpec(("a", "b"), ("a", "b"), (CameraSpec("cam", 48, 48, 3),), 10.0)
    cfg = ModelConfig(hidden=64, depth=2, image_encoder="resnet18", num_keypoints=8, image_feat_dim=16)
    path = make_untrained_checkpoint(tmp_path / "r.safetensors", spec, config=cfg)
    ckpt = read_checkpoint(path)
    assert ckpt.model_config == cfg and any(k.startswith("encoder.cams.cam.conv.stages.3.") for k in ckpt.tensors)
    policy = load_policy(path, RuntimeConfig())
    rng = np.random.default_rng(0)
    obs = Observation(rng.uniform(-1, 1, (2, 2)), {"cam": rng.integers(0, 255, (2, 48, 48, 3), dtype=np.uint8)}, 0.0)
    policy.reset(np.zeros(2))
    policy.start(policy.prepare(obs))
    assert np.isfinite(np.array([policy.step().action for _ in range(5)])).all()
