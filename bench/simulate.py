"""`dmgate simulate` at scale: wall time and peak memory for N generated messages.

Writes a generic JSON Lines history (default 1,000,000 lines) to a temporary directory,
then runs `dmgate simulate --json` on it in a child process, measuring wall time and the
child's peak RSS. The history mixes what a team's export holds: 40 sending accounts; per
account, follows (10 %), messages received (10 %), campaign copies with merge fields and
spintax (30 %) and personal one-off texts (50 %), in time order over 90 days.

    python bench/simulate.py                    # 1M messages
    python bench/simulate.py --messages 50000   # a quick look
    python bench/simulate.py --keep history.jsonl
    python bench/simulate.py --history history.jsonl --jobs 1   # the same lines again

The generated history is the same on every run (a fixed seed, no salted `hash`), so two
trees' figures compare; CPU time (all processes) is the figure to compare on a shared
machine, where wall time depends on what else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

FIRST = ["Anna", "Ben", "Chidi", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jade"]
OPENERS = ["Hi", "Hey", "Hello", "Good morning"]
PITCHES = [
    "thanks for the follow! We just launched {product}, grab {n}% off this week: {link}",
    "I noticed you work in {field}. Teams like yours save {n} hours a week with {product}. "
    "Open to a quick call? {link}",
    "welcome aboard! Reply YES to get our free {field} playbook (worth ${n})",
    "we are hosting a webinar on {field} next {day}, seats are limited, register here {link}",
]
PRODUCTS = ["Acme Scheduler", "Routewise", "LeadLoop", "Quillbox"]
FIELDS = ["logistics", "fintech", "retail", "healthcare", "edtech"]
DAYS = ["Monday", "Tuesday", "Thursday"]
WORDS = (
    "lunch meeting tomorrow project deadline coffee report slides budget review draft "
    "thanks great idea call later weekend plans family trip photo game concert book "
    "question answer update sorry late running traffic office home sure sounds good"
).split()


def generate(path: Path, messages: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(days=90) / messages
    accounts = [f"acct{i:02d}" for i in range(40)]
    with path.open("w") as f:
        for i in range(messages):
            at = (start + step * i).isoformat().replace("+00:00", "Z")
            account = rng.choice(accounts)
            recipient = f"u{rng.randrange(400_000)}"
            roll = rng.random()
            line: dict[str, object] = {"time": at, "platform": "x", "account": account}
            if roll < 0.10:
                line.update(recipient=recipient, kind="follow")
            elif roll < 0.20:
                words = rng.sample(WORDS, rng.randint(3, 9))
                line.update(recipient=recipient, kind="received", text=" ".join(words))
            elif roll < 0.50:
                pitch = PITCHES[int(account.removeprefix("acct")) % len(PITCHES)]
                text = f"{rng.choice(OPENERS)} {rng.choice(FIRST)}, " + pitch.format(
                    product=rng.choice(PRODUCTS),
                    n=rng.randint(5, 60),
                    link=f"https://ex.example/{rng.randrange(10**6):x}",
                    field=rng.choice(FIELDS),
                    day=rng.choice(DAYS),
                )
                line.update(recipient=recipient, text=text)
            else:
                words = rng.sample(WORDS, rng.randint(4, 14))
                line.update(recipient=recipient, text=" ".join(words).capitalize() + "?")
            f.write(json.dumps(line) + "\n")


def _tree_memory_kb(pid: int) -> tuple[int, int]:
    """Resident memory of a process and all its descendants (Linux /proc), in KiB: the sum
    of their RSS (a page they share, such as a library's, counted in each) and of their PSS
    (shared pages divided among the processes sharing them: what they use together)."""
    rss, pss, pending = 0, 0, [pid]
    while pending:
        current = pending.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text().splitlines()
            fields = {ln.split(":")[0]: int(ln.split()[1]) for ln in rollup[1:] if ":" in ln}
            rss += fields["Rss"]
            pss += fields["Pss"]
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return rss, pss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--keep", help="also keep the generated history at this path")
    parser.add_argument("--history", help="replay this JSON Lines file instead of generating")
    parser.add_argument("--jobs", type=int, help="passed to simulate (default: its own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dmgate-bench-simulate-") as tmp:
        if args.history:
            history = Path(args.history)
            with history.open("rb") as f:
                args.messages = sum(1 for _ in f)
        else:
            history = Path(args.keep) if args.keep else Path(tmp) / "history.jsonl"
            started = time.perf_counter()
            generate(history, args.messages)
            print(
                f"generated {args.messages:,} lines ({history.stat().st_size / 1e6:.0f} MB) "
                f"in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "proxy.cli", "simulate", "--json", str(history)]
        if args.jobs:
            command += ["--jobs", str(args.jobs)]
        started = time.perf_counter()
        child = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        peak_rss = peak_pss = 0
        while child.poll() is None:
            rss, pss = _tree_memory_kb(child.pid)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.5)
        stdout, stderr = child.communicate()
        wall = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime
        if child.returncode != 0:
            print(stderr, file=sys.stderr)
            return 1
        print(
            f"simulate: {wall:.0f} s wall ({args.messages / wall:,.0f} lines/s), "
            f"{cpu:.0f} s CPU ({cpu * 1000 / args.messages:.2f} ms per line); "
            f"peak RSS {usage.ru_maxrss / 1024:.0f} MB (largest process), "
            f"all its processes (sampled) {peak_pss / 1024:.0f} MB PSS, "
            f"{peak_rss / 1024:.0f} MB RSS summed (shared pages counted in each)"
        )
        result = json.loads(stdout)
        print(f"  sent DMs judged {result['messages']:,}: {result['decisions']}")
        print(f"  policy matches {result['policies']}")
        print(
            "  target: 1M lines in < 600 s with memory < 500 MB; at this rate 1M takes "
            f"{wall * 1_000_000 / args.messages:.0f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
