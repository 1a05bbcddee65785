"""`dmgate simulate`: read the inputs, replay them against each policy file, report.

Exit codes: 0 done; 2 an input, a policy file or the account cannot be used (one line on
stderr naming the file and line, never a traceback).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from policies.config import PolicyFileError
from proxy.backtest.inputs import InputError, Participants, Skipped, read
from proxy.backtest.replay import AccountError, Accounts, Judge, StoreJudge, replay
from proxy.backtest.report import as_json, print_summary, summarise, write_html
from proxy.backtest.spool import Spool

# Inputs with fewer records finish before a progress bar would be worth drawing.
PROGRESS_FROM = 20_000


@dataclass(frozen=True)
class Options:
    policies: Path
    inputs: list[Path]
    account: str | None = None
    report: Path | None = None
    compare: Path | None = None
    json: bool = False
    skip_bad: bool = False
    progress: bool | None = None  # None: on a terminal only


def run(options: Options) -> int:
    try:
        return asyncio.run(_run(options))
    except InputError as exc:
        print(f"dmgate simulate: {exc}", file=sys.stderr)
    except PolicyFileError as exc:
        print(f"dmgate simulate: policy file refused:\n{exc}", file=sys.stderr)
    except AccountError as exc:
        print(f"dmgate simulate: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"dmgate simulate: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
    return 2


async def _run(options: Options) -> int:
    policy_files = [options.policies] + ([options.compare] if options.compare else [])
    for policy_file in policy_files:  # refused before an hour of reading
        if not policy_file.is_file():
            raise PolicyFileError(f"{policy_file}: no such file")
    err = Console(stderr=True)
    show_progress = err.is_terminal if options.progress is None else options.progress
    with tempfile.TemporaryDirectory(prefix="dmgate-simulate-") as tmp:
        workdir = Path(tmp)
        spool = Spool(workdir)
        try:
            participants = Participants()
            skipped: dict[str, Skipped] = {}
            for path in options.inputs:
                bad = skipped.setdefault(str(path), Skipped()) if options.skip_bad else None
                for record in read(path, participants, bad):
                    spool.add(record)
            spool.sealed()
            accounts = Accounts.decide(options.account, participants)
            judges: list[Judge] = []
            try:
                for i, policy_file in enumerate(policy_files):
                    directory = workdir / f"run{i}"
                    directory.mkdir()
                    judges.append(await StoreJudge.open(policy_file, directory))
                tally = await _replay(spool, judges, accounts, show_progress, err)
            finally:
                for judge in judges:
                    await judge.close()
            spool.finished()
            summary = summarise(
                spool,
                tally,
                [str(p) for p in policy_files],
                [str(p) for p in options.inputs],
                skipped=sum(s.count for s in skipped.values()),
                skipped_examples=[e for s in skipped.values() for e in s.examples],
                notes=accounts.notes,
            )
        finally:
            spool.close()
    if options.report is not None:
        write_html(summary, options.report)
    if options.json:
        print(json.dumps(as_json(summary)))
    else:
        out = Console()
        print_summary(summary, out)
        if summary.skipped:
            for example in summary.skipped_examples[:3]:
                err.print(f"skipped {example}", highlight=False)
        if options.report is not None:
            out.print(f"report: {options.report}", highlight=False)
    return 0


async def _replay(
    spool: Spool, judges: list[Judge], accounts: Accounts, show: bool, console: Console
):  # -> Tally
    if not show or spool.records < PROGRESS_FROM:
        return await replay(spool, judges, accounts)
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=spool.records)
        return await replay(spool, judges, accounts, lambda n: bar.update(task, completed=n))
