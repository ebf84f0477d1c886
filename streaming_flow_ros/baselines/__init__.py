"""Chunk baselines behind the SFP runtime protocol (docs/BENCHMARKS.md, "Protocol"):
DP-DDPM / DP-DDIM (one "dp" model, sampler chosen at run time), FM-chunk, and SFP k=0 (an SFP
checkpoint with k = 0; no code here).

    config.py    DPConfig, FMChunkConfig (model-defining, saved in checkpoints)
    unet1d.py    the FiLM-conditioned 1-D conv U-Net over the chunk
    models.py    DPModel, FMChunkModel: loss + whole-chunk sampler
    runtime.py   ChunkRuntimeConfig, DPRuntime, FMChunkRuntime (prepare/reset/start/step)
    registry.py  kind -> (config, model), kind -> runtime, policy_type names
    train.py     dataset -> checkpoint (the generic trainer), untrained checkpoints
"""
