"""Helpers shared by the benchmarks: timing, percentiles, plain-text tables, and the machine /
version stamp every result carries (ratios are only meaningful within one run on one machine).

Timing uses time.perf_counter (seconds); results are reported in milliseconds.
"""

from __future__ import annotations

import os
import platform
import re
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """(fn(), wall seconds)."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def percentiles_ms(samples_s: Iterable[float], qs: Sequence[float] = (50, 99)) -> dict[str, float]:
    """Seconds -> {"p50": ms, "p99": ms, "max": ms, "mean": ms, "n": count}. Empty -> NaNs, n 0."""
    x = np.asarray(list(samples_s), np.float64) * 1e3
    if x.size == 0:
        return {**{f"p{q:g}": float("nan") for q in qs}, "max": float("nan"), "mean": float("nan"), "n": 0}
    out = {f"p{q:g}": float(np.percentile(x, q)) for q in qs}
    out.update(max=float(x.max()), mean=float(x.mean()), n=int(x.size))
    return out


@contextmanager
def torch_threads(n: int):
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous count after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class CpuSteal:
    """Share of CPU time the hypervisor gave to other guests (``steal`` in /proc/stat) between
    construction and ``share()``: on a shared VM, timing numbers taken while it is above a few
    percent measure the host, not the code. NaN where /proc/stat has no steal column."""

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        if len(fields) < 8:
            return None
        return fields[7], sum(fields[:8])  # steal, total (user..steal)

    @classmethod
    def jiffies(cls) -> int | None:
        """Cumulative steal, in clock ticks (USER_HZ, usually 10 ms), or None."""
        r = cls._read()
        return None if r is None else r[0]

    def share(self) -> float:
        end = self._read()
        if self._start is None or end is None or end[1] <= self._start[1]:
            return float("nan")
        return (end[0] - self._start[0]) / (end[1] - self._start[1])


def machine_info() -> dict[str, Any]:
    """Where the numbers came from (the load average says how noisy the machine was)."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        info["load_avg_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def versions(packages: Sequence[str] = ("torch", "numpy", "diffusers", "safetensors")) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    from .. import __version__

    out["streaming_flow_ros"] = __version__
    return out


def command(prog: str, opts: Sequence[tuple[str, Any]]) -> str:
    """The command line that reproduces a measurement: ``prog`` and the (flag, value) options
    that shape it; a True value is a bare flag, None or False leaves the option out."""
    return " ".join([prog] + [k if v is True else f"{k} {v}" for k, v in opts if v not in (None, False)])


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], floatfmt: str = ".3g") -> str:
    """A plain, right-aligned text table (first column left-aligned)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if not np.isfinite(v) else format(v, floatfmt)
        return str(v)

    table = [list(map(str, headers))] + [[cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    lines = []
    for k, r in enumerate(table):
        parts = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(parts))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def replace_in_text(doc: str, name: str, text: str, where: str = "the document") -> str:
    """``doc`` with what lies between ``<!-- name:begin -->`` and ``<!-- name:end -->`` replaced
    by ``text``; ValueError naming ``where`` when the markers are missing."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(doc):
        raise ValueError(f"{where} has no {begin} ... {end} section")
    return pattern.sub(lambda _: f"{begin}\n{text}\n{end}", doc)


def replace_section(path: Path, name: str, text: str) -> None:
    """Replace what lies between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in the
    markdown file ``path`` with ``text`` (generated tables: one command regenerates them)."""
    path.write_text(replace_in_text(path.read_text(), name, text, str(path)))


def print_rendered(json_path: str | Path, render: Callable[[dict], str], section: str,
                   update_doc: str | Path | None = None) -> int:
    """A benchmark's ``--render JSON [--update-doc DOC]``: print the markdown of a results JSON
    and, with ``update_doc``, write it into that document's ``section`` (``replace_section``)."""
    import json

    table = render(json.loads(Path(json_path).read_text()))
    print(table)
    if update_doc:
        replace_section(Path(update_doc), section, table)
    return 0

