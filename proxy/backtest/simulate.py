"""`dmgate simulate`: read the inputs, replay them against each policy file, report.

Exit codes: 0 done; 2 an input, a policy file or the account cannot be used (one line on
stderr naming the file and line, never a traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from policies.config import PolicyFileError, load_policy_file
from proxy.backtest import worker
from proxy.backtest.accounts import AccountError, Accounts, Tally
from proxy.backtest.inputs import InputError, Participants, Skipped, read
from proxy.backtest.report import as_json, print_summary, summarise, write_html
from proxy.backtest.spool import Spool

# Inputs with fewer records finish before a progress bar would be worth drawing.
PROGRESS_FROM = 20_000
# Below this, starting replay worker processes costs more than it saves.
WORKERS_FROM = 50_000


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
    jobs: int | None = None  # replay processes; None: one per core, at most one per account


def run(options: Options) -> int:
    try:
        return worker.run_async(_run(options))
    except InputError as exc:
        print(f"dmgate simulate: {exc}", file=sys.stderr)
    except PolicyFileError as exc:
        print(f"dmgate simulate: policy file refused:\n{exc}", file=sys.stderr)
    except AccountError as exc:
        print(f"dmgate simulate: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"dmgate simulate: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("dmgate simulate: interrupted", file=sys.stderr)
        return 130
    return 2


async def _run(options: Options) -> int:
    policy_files = [options.policies] + ([options.compare] if options.compare else [])
    for policy_file in policy_files:  # refused before an hour of reading
        if not policy_file.is_file():
            raise PolicyFileError([f"{policy_file}: no such file"], policy_file)
    err = Console(stderr=True)
    show_progress = err.is_terminal if options.progress is None else options.progress
    with tempfile.TemporaryDirectory(prefix="dmgate-simulate-") as tmp:
        workdir = Path(tmp)
        spool = Spool(workdir)
        try:
            participants = Participants()
            skipped: dict[str, Skipped] = {}
            senders: set[tuple[str, str]] = set()  # accounts named by generic inputs
            for path in options.inputs:
                bad = skipped.setdefault(str(path), Skipped()) if options.skip_bad else None
                for record in read(path, participants, bad):
                    spool.add(record)
                    if record.outbound is not None and len(senders) < 1000:
                        account = record.sender if record.outbound else record.recipients[0]
                        senders.add((record.platform, account))
            spool.sealed()
            accounts = Accounts.decide(options.account, participants)
            for note in accounts.notes:
                err.print(note, highlight=False, soft_wrap=True)
            for policy_file in policy_files:  # a bad file is refused before any work
                load_policy_file(policy_file)
            jobs = _jobs(options.jobs, spool.records, len(senders) + len(accounts.owners))
            with _progress(show_progress and spool.records >= PROGRESS_FROM, spool, err) as bar:
                if jobs > 1:
                    tally = await _in_workers(spool, workdir, policy_files, accounts, jobs, bar)
                else:
                    tally = await _in_process(spool, workdir, policy_files, accounts, bar)
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


def _jobs(asked: int | None, records: int, accounts: int) -> int:
    if asked is not None:
        return max(1, asked)
    if records < WORKERS_FROM:
        return 1
    return max(1, min(os.cpu_count() or 1, accounts))


async def _in_process(
    spool: Spool,
    workdir: Path,
    policy_files: list[Path],
    accounts: Accounts,
    bar: Callable[[int], None] | None,
) -> Tally:
    from proxy.backtest.replay import Judge, StoreJudge, replay

    judges: list[Judge] = []
    try:
        for i, policy_file in enumerate(policy_files):
            directory = workdir / f"run{i}"
            directory.mkdir()
            judges.append(await StoreJudge.open(policy_file, directory))
        return await replay(spool, judges, accounts, bar)
    finally:
        for judge in judges:
            await judge.close()


async def _in_workers(
    spool: Spool,
    workdir: Path,
    policy_files: list[Path],
    accounts: Accounts,
    jobs: int,
    bar: Callable[[int], None] | None,
) -> Tally:
    """One process per part of the sending accounts (every fact a policy reads is one
    account's), each with its own ephemeral stores; their results merged here."""
    spool.partition(jobs, accounts.owners)
    spool.release_memory()
    context = _context()
    # A fork server started by this run is stopped by it; one already running is not ours.
    ours = context.get_start_method() == "forkserver" and not _forkserver_running()
    workers = []
    for k in range(jobs):
        directory = workdir / f"part{k}"
        directory.mkdir()
        counter = context.Value("q", 0)
        process = context.Process(
            target=worker.run,
            args=(spool.path, directory, policy_files, accounts, k, counter),
            name=f"dmgate-simulate-{k}",
        )
        process.start()
        workers.append((process, counter, directory))
    try:
        while any(p.is_alive() for p, _, _ in workers):
            if bar is not None:
                bar(sum(c.value for _, c, _ in workers))  # each reads its own records
            await asyncio.sleep(0.25)
    finally:
        for process, _, _ in workers:
            if process.is_alive():
                process.terminate()
            process.join()
        if ours:
            _stop_forkserver()
    tally = Tally()
    for process, _, directory in workers:
        if process.exitcode != 0:
            raise RuntimeError(f"replay worker {process.name} failed (exit {process.exitcode})")
        part = json.loads((directory / "tally.json").read_text())
        for key, value in part.items():
            setattr(tally, key, getattr(tally, key) + value)
        spool.merge(directory / "spool.sqlite")
    return tally


def _context() -> multiprocessing.context.BaseContext:
    """How replay workers start. Where Python has a fork server (POSIX) and forking is safe
    (not macOS, whose system libraries are not fork-safe: Python spawns there), from one:
    a process started clean (not a fork of this one, with its progress thread, its open
    spool and event loop) that imports what a worker runs and loads the embedding model
    once (`preload`); each worker is a fork of it and shares those pages. Elsewhere
    spawned, each loading its own."""
    if sys.platform != "darwin" and "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # Read when the server starts: a server already running (started by an earlier
        # run in this process) keeps what it preloaded.
        context.set_forkserver_preload(["proxy.backtest.preload"])
        return context
    return multiprocessing.get_context("spawn")


def _forkserver_running() -> bool:
    from multiprocessing import forkserver

    return getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None) is not None


def _stop_forkserver() -> None:
    """Once the workers are done, the fork server's memory would be this process's alone
    for the rest of the run (the merge and the report): it is stopped now rather than when
    this process exits. Through private names (Python 3.11-3.14), as `_forkserver_running`;
    without them the server stays until exit."""
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        stop()


@contextlib.contextmanager
def _progress(show: bool, spool: Spool, console: Console) -> Iterator[Callable[[int], None] | None]:
    if not show:
        yield None
        return
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=spool.records)
        yield lambda n: bar.update(task, completed=n)
