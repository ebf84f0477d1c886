"""The reliability suite as a measurement: how many bad inputs were thrown at the node, how many
of them over live DDS, and whether every reliability test held (docs/RELIABILITY.md).

    python -m streaming_flow_ros.bench.reliability --json docs/results/reliability.json

Runs the reliability tests of a source checkout (``FILES``, about 2 minutes) in a fresh pytest
with ``SFP_BAD_INPUT_LOG`` set: each test counts the inputs it tries (``test/invariants.py``'s
``tally``; hypothesis adds a few examples of its own on top of ``max_examples``) and the totals
are summed here per category. The hypothesis database is bypassed (``--hypothesis-seed`` fixes
the draw) so the counts are of fresh examples, not replays. Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

from .common import machine_info

FILES = ("test/test_reliability_checker.py", "test/test_reliability_inputs.py", "test/test_reliability_checkpoints.py",
         "test/test_reliability_bags.py", "test/test_reliability_faults.py", "test/test_reliability_merge.py",
         "test/test_security_scan.py")
CATEGORIES = {"images": "images", "joint_states": "joint states", "checkpoints": "checkpoints",
              "bags": "bags / dataset build", "parameters": "parameters"}


def _sum_tallies(log: Path) -> dict[str, int]:
    """One JSON line per pytest process (xdist workers write one each): summed per key."""
    total: Counter[str] = Counter()
    if log.is_file():
        for line in log.read_text().splitlines():
            if line.strip():
                total.update(json.loads(line))
    return dict(sorted(total.items()))


def _outcomes(junit: Path) -> dict[str, Any]:
    """Per-file test counts from pytest's JUnit XML: passed / failed / skipped."""
    files: dict[str, Counter[str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        parts = (case.get("classname") or "?").split(".")  # e.g. test.test_reliability_inputs[.Class]
        name = next((q for q in parts if q.startswith("test_")), parts[0])
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "skipped"
        files.setdefault(name, Counter())[outcome] += 1
    total = sum(files.values(), Counter())
    return {"passed": total["passed"], "failed": total["failed"], "skipped": total["skipped"],
            "files": {k: dict(v) for k, v in sorted(files.items())}}


def measure(root: Path, seed: int = 0) -> dict[str, Any]:
    missing = [f for f in FILES if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"not a source checkout (missing {', '.join(missing)}): run this from the repository")
    with tempfile.TemporaryDirectory() as tmp:
        log, junit = Path(tmp) / "bad_inputs.jsonl", Path(tmp) / "junit.xml"
        env = {**os.environ, "SFP_BAD_INPUT_LOG": str(log)}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--hypothesis-seed={seed}",
               f"--junitxml={junit}", *FILES]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=root, env=env, check=False)
        seconds = time.monotonic() - t0
        if not junit.is_file():
            raise RuntimeError(f"pytest wrote no results (exit status {proc.returncode})")
        return {"tried": _sum_tallies(log), "tests": _outcomes(junit), "exit_status": proc.returncode,
                "seconds": round(seconds, 1), "hypothesis_seed": seed, "machine": machine_info(),
                "command": f"python -m streaming_flow_ros.bench.reliability --seed {seed}"}


def render(doc: dict[str, Any]) -> str:
    """Markdown for docs/RELIABILITY.md: bad inputs per category (all / over live DDS) and the
    tests' outcome."""
    tried = doc["tried"]
    out = ["| category | tried | of which over live DDS |", "|---|---|---|"]
    for key, label in CATEGORIES.items():
        live = tried.get(f"{key}_live")
        out.append(f"| {label} | {tried.get(key, 0):,} | {live if live is not None else '-'} |")
    total = sum(tried.get(k, 0) for k in CATEGORIES)
    total_live = sum(tried.get(f"{k}_live", 0) for k in CATEGORIES)
    out.append(f"| **all** | **{total:,}** | **{total_live:,}** |")
    t = doc["tests"]
    verdict = "all passed" if t["failed"] == 0 and doc["exit_status"] == 0 else f"**{t['failed']} failed**"
    out += ["", (f"{t['passed']} tests in {len(t['files'])} files ({', '.join(f'`{f}`' for f in t['files'])}): "
                 f"{verdict}, {t['skipped']} skipped, {doc['seconds']:.0f} s. Command: `{doc['command']}`.")]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    p.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                   help="the source checkout (default: this package's)")
    args = p.parse_args(argv)
    doc = measure(args.root, args.seed)
    print(render(doc))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return doc["exit_status"]


if __name__ == "__main__":
    sys.exit(main())
