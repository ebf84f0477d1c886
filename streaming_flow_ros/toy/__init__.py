"""T1 toy multimodal tasks (evaluation.md): bifurcation, crossing S / mirrored S, 2-D obstacle."""
