"""Explicit factories for the chunk baselines, read by checkpoint._kinds() and
policy.streaming._runtimes() (checkpoint kind -> config parser + model, kind -> runtime class),
and the bench / node names of the compared methods.

Importing this module must stay cheap: diffusers is imported only when a DP model or runtime is
built (checkpoint._kinds() imports this on every checkpoint read, SFP ones included).
"""

from __future__ import annotations

from .config import DPConfig, FMChunkConfig
from .models import DPModel, FMChunkModel
from .runtime import DPRuntime, FMChunkRuntime

BASELINE_KINDS = {
    "dp": (DPConfig.from_dict, DPModel),
    "fm_chunk": (FMChunkConfig.from_dict, FMChunkModel),
}

BASELINE_RUNTIMES = {
    "dp": DPRuntime,
    "fm_chunk": FMChunkRuntime,
}

# policy_type -> (checkpoint kind, chunk sampler or None). sfp_k0 is an SFP checkpoint trained
# with ModelConfig(k=0.0): the difference is in the checkpoint, not the runtime.
POLICY_TYPES: dict[str, tuple[str, str | None]] = {
    "sfp": ("sfp", None),
    "sfp_k0": ("sfp", None),
    "dp_ddpm": ("dp", "ddpm"),
    "dp_ddim": ("dp", "ddim"),
    "fm_chunk": ("fm_chunk", "euler"),
}
