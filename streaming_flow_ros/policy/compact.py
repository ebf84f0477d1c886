"""`sfp compact SRC DST`: a checkpoint with its weights stored as float16, about half the size
(for shipping a policy: they load back as float32; see checkpoint.half_precision_copy)."""

from __future__ import annotations

import argparse

from ..checkpoint import half_precision_copy


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="a .safetensors checkpoint")
    p.add_argument("dst", help="where to write the float16 copy")


def run(args: argparse.Namespace) -> int:
    out = half_precision_copy(args.src, args.dst)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0
