"""The bench / node names of the compared methods (policy_type -> checkpoint kind + chunk
sampler). The model kinds themselves are registered in streaming_flow_ros/kinds.py."""

from __future__ import annotations

# policy_type -> (checkpoint kind, chunk sampler or None). sfp_k0 is an SFP checkpoint trained
# with ModelConfig(k=0.0): the difference is in the checkpoint, not the runtime.
POLICY_TYPES: dict[str, tuple[str, str | None]] = {
    "sfp": ("sfp", None),
    "sfp_k0": ("sfp", None),
    "dp_ddpm": ("dp", "ddpm"),
    "dp_ddim": ("dp", "ddim"),
    "fm_chunk": ("fm_chunk", "euler"),
    "fm_rtc": ("fm_chunk", "rtc"),  # Real-Time Chunking over the FM-chunk checkpoint (baselines/executors.py)
    "fm_ensemble": ("fm_chunk", "ensemble"),  # ACT temporal ensembling, a chunk every data period
    "fm_async": ("fm_chunk", "async"),  # LeRobot async inference: chunks aggregated on the overlap
}
