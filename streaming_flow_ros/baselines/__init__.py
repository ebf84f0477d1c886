"""Chunk baselines behind the SFP runtime protocol (docs/BENCHMARKS.md, "Protocol"):
DP-DDPM / DP-DDIM (one "dp" model, sampler chosen at run time), FM-chunk, and SFP k=0 (an SFP
checkpoint with k = 0; no code here).

    config.py    DPConfig, FMChunkConfig (model-defining, saved in checkpoints)
    unet1d.py    the FiLM-conditioned 1-D conv U-Net over the chunk
    models.py    DPModel, FMChunkModel: loss + whole-chunk sampler
    runtime.py   ChunkRuntimeConfig, DPRuntime, FMChunkRuntime (prepare/reset/start/step)
    executors.py real-time executors of FM-chunk checkpoints: RTC, ACT temporal ensembling,
                 LeRobot async aggregation (ChunkRuntimeConfig.sampler rtc | ensemble | async)
    rtc.py       Real-Time Chunking's soft mask and guided Euler sampling
    registry.py  policy_type names -> (checkpoint kind, sampler); kinds live in ../kinds.py
    lerobot_binding.py  a LeRobot ACT/Diffusion pretrained_model + joint names, fps, units: a
                 JSON binding file the node loads as its checkpoint (`sfp lerobot bind`)
    lerobot_policy.py   that policy behind the protocol, through the executors above (imports
                 LeRobot; only where it imports)
    train.py     dataset -> checkpoint (the generic trainer), untrained checkpoints
"""
