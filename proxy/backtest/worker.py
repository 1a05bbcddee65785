"""The entry point of a replay worker process (`dmgate simulate --jobs N`).

Kept apart from `replay` so that the parent, which only starts workers and merges their
results, never imports the engine and the store: spawned children import this module by
name, and the heavy modules only here, in the child.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from proxy.backtest.accounts import Accounts


def run(
    source: Path,
    workdir: Path,
    policy_files: list[Path],
    accounts: Accounts,
    part: tuple[int, int],
    counter: Any,
) -> None:
    from proxy.backtest.replay import replay_partition

    replay_partition(source, workdir, policy_files, accounts, part, counter)
