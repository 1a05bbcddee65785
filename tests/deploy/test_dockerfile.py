"""The Dockerfile: hadolint-clean, multi-stage, pinned, non-root, with a healthcheck, and
copying only what dmgate needs at runtime. (No Docker engine here: it is linted, not
built.)"""

from __future__ import annotations

import re

from tests.deploy.tools import executable, ok, output, run
from tests.support import REPO

DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_finds_nothing_at_warning_level_or_above():
    proc = run([executable("hadolint"), "--failure-threshold", "warning", str(DOCKERFILE)])
    assert ok(proc), output(proc)


def test_multi_stage_on_a_pinned_slim_base():
    bases = [rest.split()[0] for word, rest in _instructions() if word == "FROM"]
    assert len(bases) == 2
    for base in bases:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base


def test_runtime_stage_runs_as_non_root_with_a_healthcheck():
    instructions = _instructions()
    runtime = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    assert health and "/healthz" in health[0]
    assert ("EXPOSE", "8080") in runtime
    # The runtime stage copies only the build stage's virtualenv: no sources, no tests.
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies == ["--from=build /opt/dmgate /opt/dmgate"]


def test_build_stage_copies_only_the_package():
    copied = {
        src
        for word, rest in _instructions()
        if word == "COPY" and not rest.startswith("--from")
        for src in rest.split()[:-1]
    }
    assert copied == {"pyproject.toml", "README.md", "proxy", "policies"}
