"""Nothing in the package turns data into code: no unpickling (pickle/dill/shelve/marshal/joblib,
torch.load without weights_only=True, np.load(allow_pickle=True), torch.jit.load), no unsafe YAML
(yaml.load without a safe Loader, full_load/unsafe_load), no eval/exec/compile/__import__, no
shell=True / os.system, and imports by name only where reviewed. The scan walks the AST of every
module (aliases resolved), and is itself tested on planted violations."""

from __future__ import annotations

import ast
import io
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "streaming_flow_ros"

FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "shelve", "marshal", "joblib", "cloudpickle"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "os.system", "os.popen", "yaml.unsafe_load",
                   "yaml.full_load", "yaml.load_all", "torch.jit.load", "numpy.load_pickle",
                   "pandas.read_pickle", "pickle.load", "pickle.loads"}
# Reviewed uses of import-by-name: a fixed table (cli) and validated message types (play).
IMPORT_BY_NAME_OK = {"streaming_flow_ros/cli.py", "streaming_flow_ros/ros/play.py"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def scan_source(text: str, rel: str) -> list[str]:
    """Findings ("file:line: what") in one module's source."""
    tree = ast.parse(text)
    aliases: dict[str, str] = {"np": "numpy"}
    findings = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                if a.name.split(".")[0] in FORBIDDEN_MODULES:
                    findings.append(f"{rel}:{node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                findings.append(f"{rel}:{node.lineno}: from {node.module} import ...")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        where = f"{rel}:{node.lineno}"
        if name in FORBIDDEN_CALLS:
            findings.append(f"{where}: {name}()")
        elif name == "torch.load":
            wo = _kw(node, "weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                findings.append(f"{where}: torch.load without weights_only=True")
        elif name == "numpy.load":
            ap = _kw(node, "allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                findings.append(f"{where}: numpy.load(allow_pickle=...)")
        elif name == "yaml.load":
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or _dotted(loader, aliases).split(".")[-1] not in SAFE_YAML_LOADERS:
                findings.append(f"{where}: yaml.load without a safe Loader")
        elif name in ("importlib.import_module", "importlib.__import__") and rel not in IMPORT_BY_NAME_OK:
            findings.append(f"{where}: {name}() outside the reviewed places")
        elif name.startswith("subprocess.") and isinstance(_kw(node, "shell"), ast.Constant) and _kw(node, "shell").value:
            findings.append(f"{where}: {name}(shell=True)")
    return findings


def package_files() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "launch").glob("*.py")) + [ROOT / "setup.py"]
    return [f for f in files if f.is_file()]


def test_package_never_turns_data_into_code():
    files = package_files()
    assert len(files) > 40
    findings = [f for p in files for f in scan_source(p.read_text(), str(p.relative_to(ROOT)))]
    assert findings == [], "\n".join(findings)


def test_config_yaml_has_no_python_tags():
    for p in sorted((ROOT / "config").rglob("*.yaml")):
        assert "!!python" not in p.read_text(), p


@pytest.mark.parametrize("src, what", [
    ("import pickle\npickle.loads(b'')", "import pickle"),
    ("import dill", "import dill"),
    ("from joblib import load", "from joblib"),
    ("import torch\ntorch.load('x')", "weights_only"),
    ("import torch\ntorch.load('x', weights_only=False)", "weights_only"),
    ("import torch as t\nt.load('x')", "weights_only"),
    ("from torch import load\nload('x')", "weights_only"),
    ("import numpy as np\nnp.load('x', allow_pickle=True)", "allow_pickle"),
    ("import yaml\nyaml.load(open('x'))", "safe Loader"),
    ("import yaml\nyaml.load(s, Loader=yaml.Loader)", "safe Loader"),
    ("import yaml\nyaml.unsafe_load(s)", "unsafe_load"),
    ("eval('1')", "eval"),
    ("exec('x=1')", "exec"),
    ("__import__('os')", "__import__"),
    ("import os\nos.system('ls')", "os.system"),
    ("import subprocess\nsubprocess.run('ls', shell=True)", "shell=True"),
    ("import importlib\nimportlib.import_module(name)", "reviewed"),
    ("import torch\ntorch.jit.load('m.pt')", "torch.jit.load"),
])
def test_scanner_catches_planted_violations(src, what):
    findings = scan_source(src, "streaming_flow_ros/planted.py")
    assert any(what in f for f in findings), findings


@pytest.mark.parametrize("src", [
    "import torch\ntorch.load('x', weights_only=True)",
    "import numpy as np\nnp.load('x', allow_pickle=False)\nnp.load('y')",
    "import yaml\nyaml.safe_load(s)\nyaml.load(s, Loader=yaml.SafeLoader)",
])
def test_scanner_accepts_safe_forms(src):
    assert scan_source(src, "streaming_flow_ros/safe.py") == []


def test_bag_message_types_cannot_import_arbitrary_modules():
    """play.py imports message classes named by the bag (untrusted): a type naming a module
    with import side effects (``this`` prints the Zen of Python) is refused without importing it."""
    from streaming_flow_ros.ros.play import message_class

    had_this = "this" in sys.modules
    out = io.StringIO()
    with redirect_stdout(out):
        for bad in ("this/msg/X", "antigravity/msg/X", "os/path/join", "../x/msg/Y", "a/b"):
            with pytest.raises(ValueError):
                message_class(bad)
    assert out.getvalue() == "" and ("this" in sys.modules) == had_this
    assert message_class("sensor_msgs/msg/JointState").__name__ == "JointState"
