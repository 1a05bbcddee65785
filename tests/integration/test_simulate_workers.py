"""Replay workers (`dmgate simulate --jobs N`): on Linux forked from a fork server that
imported the engine and the store and loaded the embedding model once (`preload`), so
that they share those pages; stopped after each run, started clean for the next."""

from __future__ import annotations

import gc
import json
import sys
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from proxy.backtest.simulate import Options, _context, _stop_forkserver, run
from tests.support import REPO

GENERIC = REPO / "tests" / "fixtures" / "generic"
POLICIES = REPO / "policies" / "default.yaml"

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="spawned elsewhere")


def _probe(conn: Connection) -> None:
    """In a worker, before it runs anything: what it found loaded."""
    from policies import meaning

    conn.send(
        {
            "model": meaning._model.cache_info().currsize,
            "engine": "proxy.backtest.replay" in sys.modules,
            "frozen": gc.get_freeze_count() > 0,
        }
    )
    conn.close()


@linux_only
def test_a_worker_starts_with_the_engine_and_model_loaded() -> None:
    _stop_forkserver()  # one started by an earlier test may have preloaded nothing
    context = _context()
    assert context.get_start_method() == "forkserver"
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_probe, args=(send,))
    process.start()
    send.close()
    try:
        found = receive.recv()
    finally:
        process.join()
        _stop_forkserver()
    assert process.exitcode == 0
    assert found == {"model": 1, "engine": True, "frozen": True}


def test_workers_decide_as_one_process_run_after_run(capsys: pytest.CaptureFixture[str]) -> None:
    inputs = [GENERIC / "history.jsonl", GENERIC / "history.csv"]
    out: dict[int, list[object]] = {1: [], 2: []}
    for jobs in (1, 2, 2):  # twice: the fork server is stopped after a run, then restarted
        options = Options(policies=POLICIES, inputs=inputs, json=True, progress=False, jobs=jobs)
        assert run(options) == 0
        out[jobs].append(json.loads(capsys.readouterr().out))
        if sys.platform == "linux":
            assert getattr(forkserver._forkserver, "_forkserver_pid", None) is None
    assert out[2][0] == out[2][1] == out[1][0]


def test_a_bad_policy_file_is_refused_before_workers_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "p.yaml"
    policies.write_text("policies:\n  template_reuse:\n    action: maybe\n")
    options = Options(policies=policies, inputs=[GENERIC / "history.jsonl"], jobs=2)
    assert run(options) == 2
    err = capsys.readouterr().err
    assert err.startswith("dmgate simulate: policy file refused:") and "action" in err
