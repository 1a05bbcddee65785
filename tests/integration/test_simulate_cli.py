"""`dmgate simulate` as a user runs it: exit codes, `--json`, and bad input named by file
and line (exit 2, never a traceback), or counted with `--skip-bad`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

FIXTURES = REPO / "tests" / "fixtures"


def simulate(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DMGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", "simulate", *map(str, args)],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_json_output_for_an_x_archive() -> None:
    done = simulate("--json", FIXTURES / "x-archive" / "direct-messages.js")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["messages"] == 7
    assert out["decisions"] == {"allow": 5, "hold": 2, "block": 0}
    assert out["policies"] == {"template_reuse": 2}


def test_summary_and_report(tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    done = simulate(
        "--report",
        report,
        FIXTURES / "linkedin-export" / "messages.csv",
        FIXTURES / "generic" / "history.jsonl",
        "--account",
        "ann-example-0a1b2c",
    )
    assert done.returncode == 0, done.stderr
    assert "would hold" in done.stdout and "Top templates" in done.stdout
    assert report.read_text().startswith("<!doctype html>")


def test_unreadable_input_names_file_and_line_exit_2(tmp_path: Path) -> None:
    broken = FIXTURES / "generic" / "broken-row.csv"
    done = simulate(broken)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"dmgate simulate: {broken}:5: broken CSV row: 7 fields where the header has 6"
    )
    assert "Traceback" not in done.stderr
    unknown = tmp_path / "notes.txt"
    unknown.write_text("just some notes\n")
    done = simulate(unknown)
    assert done.returncode == 2 and f"{unknown}:1: not a known DM export" in done.stderr
    text = (FIXTURES / "x-archive" / "direct-messages.js").read_text()
    cut = tmp_path / "direct-messages.js"
    cut.write_text(text[:3000])
    done = simulate(cut)
    assert done.returncode == 2 and "truncated archive" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    done = simulate(tmp_path / "missing.js")
    assert done.returncode == 2 and "missing.js" in done.stderr and "Traceback" not in done.stderr


def test_skip_bad_counts_the_skipped_rows() -> None:
    done = simulate("--skip-bad", "--json", FIXTURES / "generic" / "broken-row.csv")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["skipped"] == 1 and out["messages"] == 4


def test_a_bad_policy_file_is_refused(tmp_path: Path) -> None:
    policies = tmp_path / "p.yaml"
    policies.write_text("policies:\n  template_reuse:\n    action: maybe\n")
    done = simulate("--policies", policies, FIXTURES / "generic" / "history.csv")
    assert done.returncode == 2 and "action" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_policy_file_is_named_on_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    done = simulate("--policies", missing, FIXTURES / "generic" / "history.csv")
    assert done.returncode == 2
    assert f"{missing}: no such file" in done.stderr.splitlines()


def test_accounts_judged_in_parallel_processes_decide_the_same() -> None:
    inputs = [FIXTURES / "generic" / "history.jsonl", FIXTURES / "generic" / "history.csv"]
    one = simulate("--json", "--jobs", "1", *inputs)
    two = simulate("--json", "--jobs", "2", *inputs)
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    assert json.loads(one.stdout) == json.loads(two.stdout)
