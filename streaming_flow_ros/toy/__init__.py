"""T1 toy multimodal tasks (docs/BENCHMARKS.md): bifurcation, crossing S / mirrored S, 2-D obstacle."""
