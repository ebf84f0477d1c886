"""Observation encoders: per camera a convolutional trunk -- a small GroupNorm CNN ("small") or
Diffusion Policy's ResNet-18 with GroupNorm ("resnet18", nets/resnet.py) -- with spatial-softmax
keypoints (DP's recipe, written here because torchvision is not available), and the observation
encoder that stacks state and image features over the observation horizon.

Shapes: state_n (B, T_o, D_s) normalised; images name -> (B, T_o, Hh, Ww, C) uint8.
Output: cond (B, T_o * (D_s + n_cams * F)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import CameraSpec, IOSpec
from .resnet import ResNet18Trunk

IMAGE_ENCODERS = ("small", "resnet18")


class SpatialSoftmax(nn.Module):
    """Per-channel softmax over pixels -> expected (x, y) in [-1, 1]: (B, C, h, w) -> (B, 2K)."""

    def __init__(self, in_channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, num_keypoints, 1)
        self.num_keypoints = num_keypoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        B, K, h, w = x.shape
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        attn = F.softmax(x.reshape(B, K, h * w), dim=-1).reshape(B, K, h, w)
        ex = (attn.sum(2) * xs).sum(-1)  # (B, K)
        ey = (attn.sum(3) * ys).sum(-1)  # (B, K)
        return torch.cat([ex, ey], dim=-1)


class ImageEncoder(nn.Module):
    """uint8 image (N, Hh, Ww, C) -> features (N, F).

    Random crop (``crop_frac`` of each side) in training, centre crop in eval, so the network
    sees the same field size either way. ``trunk``: "small" (``channels``, stride 2 but the
    last) or "resnet18" (``channels`` unused).
    """

    def __init__(
        self,
        camera: CameraSpec,
        channels: tuple[int, ...] = (32, 64, 64),
        num_keypoints: int = 32,
        out_dim: int = 64,
        crop_frac: float = 0.9,
        trunk: str = "small",
    ) -> None:
        super().__init__()
        if not (0.5 <= crop_frac <= 1.0):
            raise ValueError(f"crop_frac must be in [0.5, 1], got {crop_frac}")
        if trunk not in IMAGE_ENCODERS:
            raise ValueError(f"image encoder must be one of {IMAGE_ENCODERS}, got {trunk!r}")
        self.camera = camera
        self.crop_h = max(8, int(round(camera.height * crop_frac)))
        self.crop_w = max(8, int(round(camera.width * crop_frac)))
        if trunk == "resnet18":
            self.conv: nn.Module = ResNet18Trunk(camera.channels)
            c_in = self.conv.out_channels
        else:
            layers: list[nn.Module] = []
            c_in = camera.channels
            for i, c in enumerate(channels):
                layers += [
                    nn.Conv2d(c_in, c, 3, stride=2 if i < len(channels) - 1 else 1, padding=1),
                    nn.GroupNorm(min(8, c), c),
                    nn.SiLU(),
                ]
                c_in = c
            self.conv = nn.Sequential(*layers)
        self.keypoints = SpatialSoftmax(c_in, num_keypoints)
        self.out = nn.Linear(2 * num_keypoints, out_dim)
        self.out_dim = out_dim

    def crop(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x (N, C, Hh, Ww) float -> (N, C, crop_h, crop_w). Random offset per batch in training."""
        H, W = x.shape[-2:]
        if self.training:
            i = int(torch.randint(0, H - self.crop_h + 1, (1,), generator=generator))
            j = int(torch.randint(0, W - self.crop_w + 1, (1,), generator=generator))
        else:
            i, j = (H - self.crop_h) // 2, (W - self.crop_w) // 2
        return x[..., i : i + self.crop_h, j : j + self.crop_w]

    def keypoints_of(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 image (N, Hh, Ww, C) -> the spatial-softmax keypoints (N, 2K): x then y, in [-1, 1]."""
        x = img.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0  # (N, C, Hh, Ww) in [-1, 1]
        return self.keypoints(self.conv(self.crop(x, generator)))

    def forward(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.out(self.keypoints_of(img, generator))


class ObsEncoder(nn.Module):
    """Stacks normalised state and per-camera image features over the observation horizon."""

    def __init__(
        self,
        spec: IOSpec,
        obs_horizon: int,
        image_channels: tuple[int, ...] = (32, 64, 64),
        num_keypoints: int = 32,
        image_feat_dim: int = 64,
        crop_frac: float = 0.9,
        image_encoder: str = "small",
    ) -> None:
        super().__init__()
        self.spec = spec
        self.obs_horizon = obs_horizon
        self.cams = nn.ModuleDict(
            {
                c.name: ImageEncoder(c, image_channels, num_keypoints, image_feat_dim, crop_frac, image_encoder)
                for c in spec.cameras
            }
        )
        self.cond_dim = obs_horizon * (spec.state_dim + len(spec.cameras) * image_feat_dim)

    def frame_features(self, name: str, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Features of single frames of camera ``name``: (N, Hh, Ww, C) uint8 -> (N, F)."""
        return self.cams[name](frames, generator)

    def combine(self, state_n: torch.Tensor, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """state_n (B, T_o, D_s) and per-camera features (B, T_o, F) -> cond (B, cond_dim)."""
        B = state_n.shape[0]
        parts = [state_n, *(feats[name] for name in self.cams)]
        return torch.cat(parts, dim=-1).reshape(B, -1)  # (B, T_o * per-step dims)

    def forward(
        self,
        state_n: torch.Tensor,
        images: dict[str, torch.Tensor],
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        B, To, _ = state_n.shape
        feats = {}
        for name in self.cams:
            img = images[name]  # (B, T_o, Hh, Ww, C)
            f = self.frame_features(name, img.reshape(B * To, *img.shape[2:]), generator)  # (B*T_o, F)
            feats[name] = f.reshape(B, To, -1)
        return self.combine(state_n, feats)
