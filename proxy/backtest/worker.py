"""The entry point of a replay worker process (`dmgate simulate --jobs N`).

Kept apart from `replay` so that the parent, which only starts workers and merges their
results, never imports the engine and the store: children import this module by name, and
the heavy modules only here, in the child (or, forked from a fork server, they find them
imported there: `preload`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from proxy.backtest.accounts import Accounts

T = TypeVar("T")


def run(
    source: Path,
    workdir: Path,
    policy_files: list[Path],
    accounts: Accounts,
    part: int,
    counter: Any,
) -> None:
    from proxy.backtest.replay import replay_partition

    replay_partition(source, workdir, policy_files, accounts, part, counter)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop where it is installed, as serve runs: a replay awaits
    several times per message (the engine gathers its policies), and uvloop's loop costs
    less per step."""
    try:
        import uvloop
    except ImportError:
        factory = asyncio.new_event_loop
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
