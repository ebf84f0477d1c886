"""Training: configs, the loop (EMA, cosine schedule, resume, DDP), the `sfp train` command."""
