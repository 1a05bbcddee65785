"""Detection benchmark for the template_reuse policy on the SMS Spam Collection.

Every message of the corpus is sent, in corpus order, as a DM from one account to a
distinct recipient, one second apart (all inside the 24h window), through the production
path: the real policy engine (a policy file with template_reuse alone, action hold) asking
the real store-backed signals (`StoreSignals`) on a fresh temporary SQLite store, one per
setting. A DM is "caught" when template_reuse matches. Spam in this corpus is mostly
templated bulk messaging, ham personal messages (some of them phone auto-replies, which are
template reuse too), so a good setting catches much spam and little ham.

    python bench/detection.py                          # the shipped banding
    python bench/detection.py --bandings 14x4,21x3,16x4 --similarity 0.4,0.5 --exact

The corpus is read from $DMGATE_SMS_CORPUS or ../shared/data/sms-spam-collection/
SMSSpamCollection.tsv relative to the repository root (`label<TAB>text`, one header line).

Measured on the 2-core project machine (5,574 messages: 747 spam, 4,827 ham; 743 spam and
4,206 ham have >= 6 tokens and are judged; min_recipients 3), through engine and store:

    banding  similarity  spam caught   ham caught
    14x4     0.50        167 (22.4%)    96 (2.0%)
    14x4     0.45        178 (23.8%)    98 (2.0%)
    14x4     0.40        182 (24.4%)    98 (2.0%)
    21x3     0.50        182 (24.4%)   100 (2.1%)
    21x3     0.45        197 (26.4%)   105 (2.2%)   <- shipped
    21x3     0.40        208 (27.8%)   110 (2.3%)
    32x2     0.50        183 (24.5%)   100 (2.1%)
    32x2     0.45        200 (26.8%)   105 (2.2%)   (evaluate ~10% slower, 50% more band rows)
    32x2     0.40        213 (28.5%)   113 (2.3%)
    exact Jaccard, pairwise, same online rule:  0.50: 171 / 91   0.45: 190 / 99   0.40: 197 / 107

    fingerprint p50 / p99: 43 / 104 µs (21x3; best of 3 runs per message)
    decision (engine + SQLite store) p50 / p99: ~0.8 / ~8 ms on the busy shared machine

The figures equal those the in-memory signals of the unit tests gave (measured up to this
change), but for one ham message at 21x3 / 0.40: a copy scoring the same against two
templates joins one of them, and the store and the double pick differently (the store's
choice between equal candidates is unspecified).

Only the 3rd and later copies of a template can be caught: with exact Jaccard >= 0.5,
312 spam (41.8%) and 218 ham (4.5%) sit in clusters of >= 3, of which at most 188 spam
and 96 ham arrive 3rd or later.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: import the repo's packages

from policies.config import parse_policies  # noqa: E402
from policies.engine import Engine  # noqa: E402
from policies.model import OutboundMessage  # noqa: E402
from policies.schema import PolicyAction  # noqa: E402
from policies.template_reuse import (  # noqa: E402
    BANDS,
    ROWS,
    SHINGLE,
    TemplateReuse,
    TemplateReuseConfig,
    fingerprint,
    normalise,
)
from proxy.store import Store  # noqa: E402

DEFAULTS = TemplateReuseConfig(action=PolicyAction.HOLD)
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "sms-spam-collection" / "SMSSpamCollection.tsv"
POLICY = """
mode: enforce
policies:
  template_reuse:
    action: hold
    window: 24h
    min_recipients: {min_recipients}
    similarity: {similarity}
"""


def load_corpus(path: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with path.open(encoding="utf-8") as handle:
        next(handle)  # header: label<TAB>sms_message
        for line in handle:
            label, _, text = line.rstrip("\n").partition("\t")
            if label:
                rows.append((label, text))
    return rows


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def engine_for(bands: int, rows: int, similarity: float, min_recipients: int) -> Engine:
    """The engine `dmgate serve` builds from a policy file; a banding other than the
    shipped one (a constant, not a setting) is swapped into its template_reuse policy."""
    loaded = parse_policies(POLICY.format(min_recipients=min_recipients, similarity=similarity))
    engine = Engine.from_loaded(loaded)
    (reuse,) = (a.policy for a in engine.active if isinstance(a.policy, TemplateReuse))
    reuse.bands, reuse.rows = bands, rows
    return engine


async def run(
    corpus: list[tuple[str, str]], bands: int, rows: int, similarity: float, min_recipients: int
) -> dict[str, object]:
    """The corpus through the engine and a fresh SQLite store: what each message's
    decision was, and what each decision cost (engine + store, µs)."""
    engine = engine_for(bands, rows, similarity, min_recipients)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    caught = {"spam": 0, "ham": 0}
    evaluate_us: list[float] = []
    with tempfile.TemporaryDirectory(prefix="dmgate-detection-") as tmp:
        store = await Store.open(f"sqlite:///{tmp}/detection.db")
        # As `dmgate serve` does: the WAL is copied back off the request path.
        checkpoints = asyncio.create_task(store.db.checkpoint_loop())
        try:
            for i, (label, text) in enumerate(corpus):
                message = OutboundMessage(
                    platform="x", account="bench", recipients=(f"r{i}",), text=text, route="x"
                )
                began = time.perf_counter_ns()
                decision = await engine.evaluate(
                    message, store.signals, start + timedelta(seconds=i)
                )
                evaluate_us.append((time.perf_counter_ns() - began) / 1000)
                if any(m.policy == TemplateReuse.name for m in decision.matches):
                    caught[label] += 1
        finally:
            checkpoints.cancel()
            await asyncio.gather(checkpoints, return_exceptions=True)
            await store.close()
    return {"caught": caught, "evaluate_us": evaluate_us}


def fingerprint_cost(
    corpus: list[tuple[str, str]], bands: int, rows: int, repeats: int = 3
) -> list[float]:
    """Per-message fingerprint cost in µs, the best of `repeats` runs of each message, so
    a busy machine's preemptions do not pass for the cost of long messages."""
    costs: list[float] = []
    for _, text in corpus:
        best = float("inf")
        for _ in range(repeats):
            began = time.perf_counter_ns()
            fingerprint(text, "x:bench", bands=bands, rows=rows)
            best = min(best, (time.perf_counter_ns() - began) / 1000)
        costs.append(best)
    return costs


def exact_reference(
    corpus: list[tuple[str, str]], similarity: float, min_recipients: int, min_tokens: int
) -> dict[str, int]:
    """The same online rule with exact Jaccard instead of MinHash/LSH: a message is caught
    when at least min_recipients-1 earlier messages share >= `similarity` of its shingles.
    (Pairwise, so it does not chain copies the way stored templates do.) O(n^2)."""
    sets: list[frozenset[str] | None] = []
    caught = {"spam": 0, "ham": 0}
    for label, text in corpus:
        normalised = normalise(text)
        if len(normalised.split()) < min_tokens:
            sets.append(None)
            continue
        last = max(len(normalised) - SHINGLE, 0)
        mine = frozenset(normalised[i : i + SHINGLE] for i in range(last + 1))
        similar = 0
        for other in sets:
            if other is not None and len(mine & other) >= similarity * len(mine | other):
                similar += 1
                if similar + 1 >= min_recipients:
                    caught[label] += 1
                    break
        sets.append(mine)
    return caught


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--bandings", default=f"{BANDS}x{ROWS}", help="e.g. 14x4,21x3")
    parser.add_argument(
        "--similarity",
        default=str(DEFAULTS.similarity),
        help="acceptance thresholds, e.g. 0.4,0.5",
    )
    parser.add_argument("--min-recipients", type=int, default=DEFAULTS.min_recipients)
    parser.add_argument("--exact", action="store_true", help="also the exact-Jaccard reference")
    parser.add_argument(
        "--old-ref",
        default="",
        help="git ref of the old detector, run first (default: the merge-base with main)",
    )
    parser.add_argument("--no-old", action="store_true", help="only this tree's detector")
    args = parser.parse_args(argv)

    corpus_path = args.corpus or Path(os.environ.get("DMGATE_SMS_CORPUS", DEFAULT_CORPUS))
    if not args.no_old:
        run_old(args, corpus_path)
        print("new (this tree):")
    corpus = load_corpus(corpus_path)
    totals = {label: sum(1 for lab, _ in corpus if lab == label) for label in ("spam", "ham")}
    judged = {
        label: sum(
            1
            for lab, text in corpus
            if lab == label and fingerprint(text, "s", min_tokens=DEFAULTS.min_tokens) is not None
        )
        for label in totals
    }
    print(
        f"{corpus_path.name}: {len(corpus)} messages ({totals['spam']} spam, {totals['ham']} ham;"
        f" judged as possible templates: {judged['spam']} spam, {judged['ham']} ham),"
        f" min_recipients {args.min_recipients}"
    )
    print(
        f"{'banding':>8} {'sim':>5} {'spam caught':>16} {'ham caught':>16}"
        f" {'fingerprint p50/p99 µs':>24} {'evaluate p50/p99 µs':>21}"
    )
    for banding in args.bandings.split(","):
        bands, rows = (int(part) for part in banding.lower().split("x"))
        fp_us = fingerprint_cost(corpus, bands, rows)
        for similarity in (float(s) for s in args.similarity.split(",")):
            result = asyncio.run(run(corpus, bands, rows, similarity, args.min_recipients))
            caught, evaluate_us = result["caught"], result["evaluate_us"]
            assert isinstance(caught, dict) and isinstance(evaluate_us, list)
            print(
                f"{banding:>8} {similarity:>5.2f}"
                f" {caught['spam']:>5} ({100 * caught['spam'] / totals['spam']:5.1f}%)"
                f" {caught['ham']:>7} ({100 * caught['ham'] / totals['ham']:5.1f}%)"
                f" {statistics.median(fp_us):>14.0f} / {percentile(fp_us, 0.99):<7.0f}"
                f" {statistics.median(evaluate_us):>11.0f} / {percentile(evaluate_us, 0.99):<7.0f}"
            )
    if args.exact:
        for similarity in (float(s) for s in args.similarity.split(",")):
            ref = exact_reference(
                corpus, similarity, args.min_recipients, min_tokens=DEFAULTS.min_tokens
            )
            print(
                f"{'exact':>8} {similarity:>5.2f}"
                f" {ref['spam']:>5} ({100 * ref['spam'] / totals['spam']:5.1f}%)"
                f" {ref['ham']:>7} ({100 * ref['ham'] / totals['ham']:5.1f}%)"
                "   (exact Jaccard, pairwise, same online rule: reference)"
            )
    return 0


def run_old(args: argparse.Namespace, corpus_path: Path) -> None:
    """The old detector on the same corpus and settings: this script as it was at
    --old-ref (git archive into a temporary directory), run by the same Python."""
    ref = (
        args.old_ref
        or subprocess.run(
            ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    with tempfile.TemporaryDirectory(prefix="dmgate-old-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        print(f"old ({ref[:10]}):", flush=True)
        command = [sys.executable, f"{tmp}/bench/detection.py", "--corpus", str(corpus_path)]
        command += ["--bandings", args.bandings, "--similarity", args.similarity]
        command += ["--min-recipients", str(args.min_recipients)]
        if "--no-old" in Path(f"{tmp}/bench/detection.py").read_text():
            command.append("--no-old")  # it would compare itself with its own old one
        subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": tmp})


if __name__ == "__main__":
    raise SystemExit(main())
