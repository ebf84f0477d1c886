"""Do real-size camera frames get through DDS? ``python -m streaming_flow_ros.bench.camera_transport``

For each transport set-up (environment variables and/or a Fast DDS XML profile, plus a QoS) and
each image size, two child processes run on this host: a publisher sending ``sensor_msgs/Image``
rgb8 at ``--rate`` Hz for ``--seconds`` s, and a subscriber that, by default, uses the policy
node's exact image QoS (``SENSOR_QOS`` from ros/node.py: BEST_EFFORT, depth 1). The subscriber
counts the frames it gets and their latency (header stamp, set by the publisher just before
``publish()``, to the subscriber callback: both on the same host's wall clock) and the longest
gap between two delivered frames (the node holds when a camera gap exceeds ``max_obs_age``).

Every pair is a fresh pair of processes (ros/camera_peers.py: the ROS side lives in the ROS
layer) because Fast DDS reads its environment variables and XML profile once per process. This
module never imports rclpy; it reads /proc/stat
before and after each run and reports the CPU steal with the numbers (on a shared VM, a run
that met steal measures the host).

    python -m streaming_flow_ros.bench.camera_transport --json runs/camera_transport.json
    python -m streaming_flow_ros.bench.camera_transport --quick --json /tmp/q.json   # test mode
    python -m streaming_flow_ros.bench.camera_transport --list

JSON: ``settings``, ``fastdds`` (library version, env vars honoured), ``machine`` (load,
``cpu_steal`` over the whole run), ``results``: one row per (set-up, size) with ``published``,
``received``, ``delivered_fps``, ``delivery_ratio``, ``latency_ms`` (p50/p99/max/mean/n),
``lost`` (ranges of sequence numbers), ``max_gap_ms``, ``cpu_steal``, ``matched`` and, on
failure, ``error``. Exit status 1 when a run failed (no result), not on lost frames.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ros.camera_peers import READY, RESULT, TOPIC  # constants only: no ROS import here

SIZES = {"320x240": (320, 240), "640x480": (640, 480), "1280x720": (1280, 720), "3840x2160": (3840, 2160)}
DEFAULT_SIZES = ("320x240", "640x480", "1280x720")  # 4K only on request (--sizes)
PROFILE = ("dds", "fastdds_camera.xml")  # under config/: the shipped set-up
SHIPPED = "profile"
QUICK_SIZE = "640x480"
PEERS = "streaming_flow_ros.ros.camera_peers"  # the ROS side: publisher and subscriber processes
# Environment variables that change Fast DDS transports/QoS. They are cleared in the children
# unless a set-up sets them, so every set-up is measured as declared, not as the caller's shell has it.
FASTDDS_ENV = ("FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE",
               "RMW_FASTRTPS_USE_QOS_FROM_XML", "RMW_FASTRTPS_PUBLICATION_MODE", "ROS_LOCALHOST_ONLY",
               "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "FASTDDS_ENVIRONMENT_FILE",
               "ROS_DISABLE_LOANED_MESSAGES")


@dataclass(frozen=True)
class Setup:
    """One transport set-up: environment for both processes, the subscriber's QoS (``sensor`` =
    the node's SENSOR_QOS, or ``best_effort``/``reliable`` with ``depth``) and the publisher's."""

    name: str
    what: str
    env: dict[str, str] = field(default_factory=dict)
    profile: bool = False  # FASTDDS_DEFAULT_PROFILES_FILE = the shipped config/dds profile
    profile_side: str = "both"  # which process gets the profile: both, pub or sub
    sub_qos: str = "sensor"
    sub_depth: int = 1
    pub_qos: str = "reliable"  # what most camera drivers use (SYSTEM_DEFAULT); it matches either reader
    pub_depth: int = 5


SETUPS: dict[str, Setup] = {s.name: s for s in [
    Setup("default", "pip wheels as installed: Fast DDS builtin transports (SHM + UDPv4), node QoS"),
    Setup("default_reliable", "as installed, subscriber RELIABLE depth 5", sub_qos="reliable", sub_depth=5),
    Setup("udp", "FASTDDS_BUILTIN_TRANSPORTS=UDPv4 (what a camera on another host meets)",
          env={"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}),
    Setup("shm", "FASTDDS_BUILTIN_TRANSPORTS=SHM (same host only)", env={"FASTDDS_BUILTIN_TRANSPORTS": "SHM"}),
    Setup("large_data", "FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (UDP discovery, TCP + SHM data)",
          env={"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}),
    Setup("large_data_reliable", "LARGE_DATA, subscriber RELIABLE depth 5",
          env={"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}, sub_qos="reliable", sub_depth=5),
    Setup("default_sockets", "FASTDDS_BUILTIN_TRANSPORTS=DEFAULT?sockets_size=4MB (SHM segment 8 MB, UDP 4 MB)",
          env={"FASTDDS_BUILTIN_TRANSPORTS": "DEFAULT?sockets_size=4MB"}),
    Setup("udp_sockets", "FASTDDS_BUILTIN_TRANSPORTS=UDPv4?sockets_size=4MB (needs net.core.rmem_max >= 4 MB)",
          env={"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4?sockets_size=4MB"}),
    Setup(SHIPPED, "FASTDDS_DEFAULT_PROFILES_FILE=config/dds/fastdds_camera.xml, node QoS", profile=True),
    Setup("profile_pub_only", "the profile in the publisher (camera driver) process only", profile=True,
          profile_side="pub"),
    Setup("profile_sub_only", "the profile in the subscriber (policy node) process only", profile=True,
          profile_side="sub"),
    Setup("profile_depth5", "the profile, subscriber BEST_EFFORT depth 5", profile=True,
          sub_qos="best_effort", sub_depth=5),
    Setup("profile_reliable", "the profile, subscriber RELIABLE depth 5", profile=True,
          sub_qos="reliable", sub_depth=5),
    Setup("profile_be_pub", "the profile, publisher BEST_EFFORT depth 1 too (sensor-data driver)",
          profile=True, pub_qos="best_effort", pub_depth=1),
]}


_PROFILE_OVERRIDE: list[Path] = []  # --profile


def profile_path() -> Path:
    """The XML the ``profile*`` set-ups use: ``--profile`` if given, else config/dds/fastdds_camera.xml."""
    from ..presets import find_config

    return _PROFILE_OVERRIDE[-1] if _PROFILE_OVERRIDE else find_config(*PROFILE)


def child_env(setup: Setup, side: str) -> dict[str, str]:
    """The environment of the ``side`` ("pub" or "sub") process of a set-up."""
    env = {k: v for k, v in os.environ.items() if k not in FASTDDS_ENV}
    env.update(setup.env)
    if setup.profile and setup.profile_side in ("both", side):
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile_path())
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def fastdds_info() -> dict[str, Any]:
    """The Fast DDS library the rmw wheels load (version from its file name) and the wheels'."""
    from importlib import metadata

    info: dict[str, Any] = {"env_honoured": ["FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE",
                                             "FASTDDS_BUILTIN_TRANSPORTS", "RMW_FASTRTPS_USE_QOS_FROM_XML",
                                             "RMW_FASTRTPS_PUBLICATION_MODE"]}
    for dist in ("ros-fastdds", "ros-rmw-fastrtps-cpp", "ros-rclpy"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = "not installed"
    libs = sorted(Path(sys.prefix, "lib").glob("libfastdds.so.*.*.*"))
    info["libfastdds"] = libs[-1].name.removeprefix("libfastdds.so.") if libs else "not found"
    return info


# ---------------------------------------------------------------------------------------------
# Parent


class _Child:
    """A peer process whose stdout lines a thread collects (select() on a buffered text pipe can
    miss lines already read into the buffer)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        import queue
        import threading

        self.proc = subprocess.Popen([sys.executable, "-m", PEERS, *args], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put) -> None:
        for line in stream:
            put(line)
        put(None)

    def read_marked(self, marker: str, timeout: float) -> str | None:
        """The rest of the first stdout line starting with ``marker``; None at EOF / timeout."""
        import queue

        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            if line.startswith(marker):
                return line[len(marker):].strip()
        return None

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self, grace_s: float = 15.0) -> str:
        """Close stdin (the subscriber then finishes), let the process exit by itself (a killed
        Fast DDS participant leaves its shared-memory segment in /dev/shm), kill it after
        ``grace_s``; the tail of its stderr (for error reports)."""
        try:
            if self.proc.stdin is not None and not self.proc.stdin.closed:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        time.sleep(0.05)  # the stderr pump finishes its last lines
        return "".join(x for x in self.err if x).strip()[-600:]


def measure(setup: Setup, size: str, *, seconds: float, rate: float) -> dict[str, Any]:
    """One (set-up, size) run: a fresh subscriber and publisher process."""
    from .common import CpuSteal, percentiles_ms

    width, height = SIZES[size]
    row: dict[str, Any] = {"setup": setup.name, "size": size, "bytes": 3 * width * height,
                           "sub_qos": f"{setup.sub_qos}/{setup.sub_depth}" if setup.sub_qos != "sensor" else "SENSOR_QOS",
                           "pub_qos": f"{setup.pub_qos}/{setup.pub_depth}"}
    steal = CpuSteal()
    sub = _Child(["--role", "sub", "--qos", setup.sub_qos, "--depth", str(setup.sub_depth)], child_env(setup, "sub"))
    pub = None
    try:
        if sub.read_marked(READY, 60.0) is None:
            raise RuntimeError(f"subscriber did not start: {sub.stop()}")
        pub = _Child(["--role", "pub", "--qos", setup.pub_qos, "--depth", str(setup.pub_depth),
                      "--width", str(width), "--height", str(height), "--rate", str(rate),
                      "--seconds", str(seconds)], child_env(setup, "pub"))
        p = pub.read_marked(RESULT, seconds + 60.0)
        if p is None:
            raise RuntimeError(f"publisher gave no result: {pub.stop()}")
        pres = json.loads(p)
        time.sleep(1.0)  # frames in flight
        sub.tell("stop")
        s = sub.read_marked(RESULT, 30.0)
        if s is None:
            raise RuntimeError(f"subscriber gave no result: {sub.stop()}")
        frames = json.loads(s)["frames"]
    except Exception as e:  # noqa: BLE001 - reported in the row, the sweep goes on
        row.update(error=str(e), published=0, received=0, delivered_fps=0.0, delivery_ratio=0.0,
                   cpu_steal=steal.share(), matched=False)
        return row
    finally:
        for child in (sub, pub):
            if child is not None:
                child.stop()
    span_s = max((pres["last_ns"] - pres["first_ns"]) / 1e9, 1e-9) + 1.0 / rate
    seqs = {f[0] for f in frames if 0 <= f[0] < pres["published"]}
    ok_size = all(f[3] == 3 * width * height for f in frames)
    recv = sorted(f[1] for f in frames)
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(recv)]
    # a gap also before the first and after the last delivered frame, within the publishing window
    edges = [(recv[0] - pres["first_ns"]) / 1e9, (pres["last_ns"] - recv[-1]) / 1e9] if recv else [span_s]
    lost = sorted(set(range(pres["published"])) - seqs)
    row.update(
        published=pres["published"], received=len(seqs), lost=_ranges(lost), duplicates=len(frames) - len(seqs), sizes_ok=ok_size,
        matched=pres["matched"], seconds=round(span_s, 3),
        delivered_fps=len(seqs) / span_s, delivery_ratio=len(seqs) / max(pres["published"], 1),
        latency_ms=percentiles_ms([(f[1] - f[2]) / 1e9 for f in frames]),
        max_gap_ms=1e3 * max([*gaps, *edges], default=span_s),
        publish_call_ms=percentiles_ms(pres["publish_s"]),
        cpu_steal=steal.share(),
    )
    return row


def run(setups: list[str], sizes: list[str], *, seconds: float, rate: float, out=print) -> dict[str, Any]:
    from .common import CpuSteal

    steal = CpuSteal()
    load0 = os.getloadavg()
    results = []
    for name in setups:
        for size in sizes:
            r = measure(SETUPS[name], size, seconds=seconds, rate=rate)
            results.append(r)
            out(_line(r))
    doc = {
        "benchmark": "camera_transport",
        "settings": {"rate_hz": rate, "seconds": seconds, "sizes": sizes, "setups": setups, "topic": TOPIC,
                     "encoding": "rgb8", "profile": str(profile_path()),
                     "setup_defs": {n: {"what": SETUPS[n].what, "env": SETUPS[n].env, "profile": SETUPS[n].profile,
                                        "profile_side": SETUPS[n].profile_side, "sub_qos": SETUPS[n].sub_qos, "sub_depth": SETUPS[n].sub_depth,
                                        "pub_qos": SETUPS[n].pub_qos, "pub_depth": SETUPS[n].pub_depth}
                                    for n in setups}},
        "fastdds": fastdds_info(),
        "machine": {"cpu_count": os.cpu_count(), "load_avg_start": [round(x, 2) for x in load0],
                    "load_avg_end": [round(x, 2) for x in os.getloadavg()], "cpu_steal": steal.share(),
                    "rmem_max": _sysctl("net/core/rmem_max"), "wmem_max": _sysctl("net/core/wmem_max"),
                    "rmem_default": _sysctl("net/core/rmem_default")},
        "results": results,
    }
    return doc


def _ranges(xs: list[int], limit: int = 20) -> list[str]:
    """[0, 1, 2, 5] -> ["0-2", "5"] (at most ``limit`` ranges, then "...")."""
    out: list[list[int]] = []
    for x in xs:
        if out and out[-1][1] == x - 1:
            out[-1][1] = x
        else:
            out.append([x, x])
    txt = [f"{a}-{b}" if b > a else str(a) for a, b in out]
    return txt[:limit] + (["..."] if len(txt) > limit else [])


def _sysctl(key: str) -> int | None:
    try:
        return int(Path("/proc/sys", key).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['setup']:20s} {r['size']:>9s}  ERROR {r['error'][:200]}"
    lat = r["latency_ms"]
    return (f"{r['setup']:20s} {r['size']:>9s}  {r['received']:4d}/{r['published']:<4d} frames  "
            f"{r['delivered_fps']:5.1f} fps  latency p50 {lat['p50']:7.2f} p99 {lat['p99']:7.2f} ms  "
            f"max gap {r['max_gap_ms']:7.1f} ms  steal {100 * r['cpu_steal']:4.1f} %")


LABELS = {  # short row labels for the docs table
    "default": "as installed (`default`)",
    "default_reliable": "as installed, subscriber RELIABLE depth 5",
    "udp": "`FASTDDS_BUILTIN_TRANSPORTS=UDPv4` (default 208 KB socket buffers)",
    "shm": "`FASTDDS_BUILTIN_TRANSPORTS=SHM` (512 KB segment)",
    "large_data": "`FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`",
    "large_data_reliable": "`LARGE_DATA`, subscriber RELIABLE depth 5",
    "default_sockets": "`FASTDDS_BUILTIN_TRANSPORTS=DEFAULT?sockets_size=4MB`",
    "udp_sockets": "`FASTDDS_BUILTIN_TRANSPORTS=UDPv4?sockets_size=4MB`",
    SHIPPED: "**profile, both processes**",
    "profile_pub_only": "profile in the publisher only",
    "profile_sub_only": "profile in the subscriber only",
    "profile_depth5": "profile, subscriber BEST_EFFORT depth 5",
    "profile_reliable": "profile, subscriber RELIABLE depth 5",
    "profile_be_pub": "profile, publisher BEST_EFFORT depth 1 too",
}


def render(doc: dict[str, Any]) -> str:
    """Markdown: one row per set-up, one column per size; a cell is delivered frames/s, with the
    latency p50 / p99 in ms where frames flowed (at least one per second)."""
    st, m = doc["settings"], doc["machine"]
    sizes = list(st["sizes"])
    cells: dict[str, dict[str, str]] = {}
    for r in doc["results"]:
        lat = r.get("latency_ms") or {}
        text = "error" if "error" in r else f"{r['delivered_fps']:.1f}"
        if "error" not in r and r["delivered_fps"] >= 1.0 and lat.get("n"):
            text += f" ({lat['p50']:.1f} / {lat['p99']:.1f})"
        cells.setdefault(r["setup"], {})[r["size"]] = text
    out = [(f"rgb8 at {st['rate_hz']:g} Hz, {st['seconds']:g} s per run, Fast DDS {doc['fastdds'].get('libfastdds', '?')}, "
            f"profile `{Path(st['profile']).name}`; frames/s (latency p50 / p99, ms). CPU steal {m['cpu_steal']:.1%}, "
            f"load average {m['load_avg_start'][0]:g} -> {m['load_avg_end'][0]:g}, "
            f"net.core.rmem_max {m.get('rmem_max')}."), "",
           "| set-up | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]
    for name, by_size in cells.items():
        out.append(f"| {LABELS.get(name, name)} | " + " | ".join(by_size.get(z, "-") for z in sizes) + " |")
    gaps = [r["max_gap_ms"] for r in doc["results"] if r["setup"] == SHIPPED and "max_gap_ms" in r
            and r["delivered_fps"] >= 0.9 * st["rate_hz"]]
    if gaps:
        out += ["", f"Longest gap between two delivered frames with `{SHIPPED}`: {min(gaps):.0f}-{max(gaps):.0f} ms."]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streaming_flow_ros.bench.camera_transport",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--quick", action="store_true",
                    help=f"test mode: the shipped set-up only, {QUICK_SIZE}, 2 s")
    ap.add_argument("--setups", default=",".join(SETUPS), help="comma-separated, see --list")
    ap.add_argument("--sizes", default=",".join(DEFAULT_SIZES), help="comma-separated WxH of " + ", ".join(SIZES))
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--profile", type=Path, help="a Fast DDS XML profile for the profile* set-ups "
                    "(default: the shipped config/dds/fastdds_camera.xml)")
    ap.add_argument("--list", action="store_true", help="print the set-ups and exit")
    a = ap.parse_args(argv)
    if a.list:
        for s in SETUPS.values():
            print(f"{s.name:20s} {s.what}")
        return 0
    if a.profile:
        _PROFILE_OVERRIDE.append(a.profile.resolve())
    setups, sizes, seconds = a.setups.split(","), a.sizes.split(","), a.seconds
    if a.quick:
        setups, sizes, seconds = [SHIPPED], [QUICK_SIZE], min(seconds, 2.0)
    bad = [s for s in setups if s not in SETUPS] + [z for z in sizes if z not in SIZES]
    if bad:
        ap.error(f"unknown set-up or size: {', '.join(bad)}")
    info = fastdds_info()
    print(f"camera transport: sensor_msgs/Image rgb8 at {a.rate:g} Hz for {seconds:g} s per run, "
          f"Fast DDS {info['libfastdds']} (rmw_fastrtps_cpp {info['ros-rmw-fastrtps-cpp']}); "
          f"net.core.rmem_max {_sysctl('net/core/rmem_max')}")
    doc = run(setups, sizes, seconds=seconds, rate=a.rate)
    print(f"CPU steal over the whole run: {100 * doc['machine']['cpu_steal']:.1f} %  "
          f"(load average {doc['machine']['load_avg_start'][0]} -> {doc['machine']['load_avg_end'][0]})")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(doc, indent=1))
    return 1 if any("error" in r for r in doc["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
