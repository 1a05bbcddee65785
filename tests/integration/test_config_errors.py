"""`dmgate serve` refuses a bad configuration the way an operator needs: exit code 2, one
line naming the variable (the route and the value), never a traceback. Each run exits well
within a second or two: settings are checked before the app is even imported."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, REVIEW_TOKENS, SECRET_KEY

BROKEN = REPO / "tests" / "fixtures" / "broken-config"
CASES = sorted(BROKEN.glob("*.env"))


def serve(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DMGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", "serve", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,  # a config that wrongly starts must not hang the suite
    )


def fixture_lines(path: Path, tag: str) -> list[str]:
    prefix = f"# {tag}: "
    return [
        line[len(prefix) :] for line in path.read_text().splitlines() if line.startswith(prefix)
    ]


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_a_broken_config_is_one_clear_line_and_exit_2(case: Path, tmp_path: Path):
    # The fixture is the operator's `.env`, read from the working directory.
    (tmp_path / ".env").write_text(case.read_text())
    proc = serve(tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    (line,) = proc.stderr.splitlines()
    for fragment in fixture_lines(case, "expect"):
        assert fragment in line
    for secret in fixture_lines(case, "secret"):
        assert secret not in output
    assert not (tmp_path / "dmgate.db").exists()  # refused before touching anything


def test_a_port_in_use_is_one_clear_line_and_exit_2(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = serve(
            tmp_path,
            DMGATE_HOST="127.0.0.1",
            DMGATE_PORT=str(port),
            DMGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'dmgate.db'}",
            DMGATE_REVIEW_TOKENS=",".join(f"{k}:{v}" for k, v in REVIEW_TOKENS.items()),
            DMGATE_SECRET_KEY=SECRET_KEY,
            DMGATE_LOG_FORMAT="json",
        )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert (
        f"dmgate: cannot listen on 127.0.0.1:{port}: address already in use "
        "(DMGATE_HOST/DMGATE_PORT)"
    ) in proc.stderr.splitlines()


def test_serve_help_lists_the_settings(tmp_path: Path):
    proc = serve(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    for name in ("DMGATE_ROUTES", "DMGATE_HOLD_TTL", "DMGATE_REVIEW_TOKENS", "DMGATE_PORT"):
        assert name in proc.stdout
    assert "DMGATE_HOLD_TTL  (default: 72h)" in proc.stdout
    assert 'platform "none" = never judged' in proc.stdout
