"""What a replay found, three ways: a terminal summary (rich), one JSON object, and one
self-contained HTML file (inline CSS, inline SVG charts drawn here, a few lines of inline
script for the search; nothing loaded from anywhere, so it opens offline).

Every text in a report came from the exported DMs, that is from whoever wrote them:
the HTML is rendered by Jinja2 with autoescaping on, and a Content-Security-Policy
forbids loading or sending anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from rich.console import Console
from rich.table import Table

from proxy.backtest.accounts import Tally
from proxy.backtest.spool import Spool

ACTIONS = ("allow", "hold", "block")
# Held/blocked DMs listed in the HTML report (all are counted).
MAX_LISTED = 5000
# Time from a follow to the first DM to that follower.
FOLLOW_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 1 min", 60),
    ("1-5 min", 300),
    ("5-15 min", 900),
    ("15-60 min", 3600),
    ("1-6 h", 6 * 3600),
    ("6-24 h", 86400),
    ("1-7 days", 7 * 86400),
    ("> 7 days", math.inf),
)


@dataclass
class RunSummary:
    """One policy file's verdict on the history."""

    policy_file: str
    counts: dict[str, int]  # what would have happened (shadow matches count)
    taken: dict[str, int]  # what the proxy would have done (enforced matches only)
    policies: dict[str, dict[str, int]]
    by_day: list[tuple[str, dict[str, int]]]
    flagged_total: int = 0
    flagged: list[dict[str, Any]] = field(default_factory=list)

    @property
    def shadow(self) -> bool:
        return self.counts != self.taken


@dataclass
class Summary:
    inputs: list[str]
    tally: Tally
    skipped: int
    skipped_examples: list[str]
    notes: list[str]
    runs: list[RunSummary]
    campaigns: list[dict[str, Any]]
    follow_to_dm: list[tuple[str, int]]
    changes_total: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)


def summarise(
    spool: Spool,
    tally: Tally,
    policy_files: list[str],
    inputs: list[str],
    skipped: int = 0,
    skipped_examples: list[str] | None = None,
    notes: list[str] | None = None,
    listed: int = MAX_LISTED,
) -> Summary:
    runs = []
    for run, policy_file in enumerate(policy_files):
        total, flagged = spool.flagged(run, listed)
        runs.append(
            RunSummary(
                policy_file=policy_file,
                counts={a: spool.counts(run).get(a, 0) for a in ACTIONS},
                taken={a: spool.taken_counts(run).get(a, 0) for a in ACTIONS},
                policies=spool.policy_matches(run),
                by_day=spool.by_day(run),
                flagged_total=total,
                flagged=flagged,
            )
        )
    histogram = dict.fromkeys((label for label, _ in FOLLOW_BUCKETS), 0)
    for seconds in spool.follow_to_dm_seconds():
        label = next(label for label, upper in FOLLOW_BUCKETS if seconds < upper)
        histogram[label] += 1
    summary = Summary(
        inputs=inputs,
        tally=tally,
        skipped=skipped,
        skipped_examples=skipped_examples or [],
        notes=notes or [],
        runs=runs,
        campaigns=spool.top_campaigns(range(len(policy_files))),
        follow_to_dm=list(histogram.items()),
    )
    if len(policy_files) > 1:
        summary.changes_total, summary.changes = spool.changes(listed)
    return summary


# --- JSON ---------------------------------------------------------------------------------


def _run_json(run: RunSummary) -> dict[str, Any]:
    return {
        "decisions": dict(run.counts),
        "policies": {name: sum(by.values()) for name, by in sorted(run.policies.items())},
    }


def as_json(summary: Summary) -> dict[str, Any]:
    """DESIGN.md's object (`messages`, `decisions`, `policies`) for the first policy file,
    plus what else a machine may want."""
    first = summary.runs[0]
    out: dict[str, Any] = {"messages": summary.tally.sent, **_run_json(first)}
    out["policy_file"] = first.policy_file
    out["shadow"] = first.shadow
    out["enforced_decisions"] = dict(first.taken)
    out["received"] = summary.tally.received
    out["follows"] = summary.tally.follows
    out["skipped"] = summary.skipped
    out["top_campaigns"] = [
        {"recipients": c["recipients"], "messages": c["messages"], "text": c["text"]}
        for c in summary.campaigns
    ]
    if len(summary.runs) > 1:
        other = summary.runs[1]
        out["compare"] = {
            "policy_file": other.policy_file,
            **_run_json(other),
            "changed": summary.changes_total,
        }
    return out


# --- terminal -----------------------------------------------------------------------------


def print_summary(summary: Summary, console: Console) -> None:
    t = summary.tally
    console.print(
        f"{t.sent:,} sent DMs judged · {t.received:,} received · {t.follows:,} follows"
        + (f" · {summary.skipped:,} bad records skipped" if summary.skipped else ""),
        highlight=False,
    )
    table = Table(title="What the policies would have done", title_justify="left")
    table.add_column("")
    for run in summary.runs:
        header = Path(run.policy_file).name + (" (shadow)" if run.shadow else "")
        table.add_column(header, justify="right")
    if len(summary.runs) > 1:
        table.add_column("change", justify="right")
    policies = sorted({p for run in summary.runs for p in run.policies})
    for action in ACTIONS:
        values = [run.counts[action] for run in summary.runs]
        table.add_row(f"would {action}", *_cells(values, t.sent))
    table.add_section()
    for policy in policies:
        for action in ("hold", "block"):
            values = [run.policies.get(policy, {}).get(action, 0) for run in summary.runs]
            if any(values):
                table.add_row(f"{policy} → {action}", *_cells(values, t.sent))
    console.print(table)
    if summary.changes_total:
        console.print(f"{summary.changes_total:,} DMs change outcome between the two files")
    if summary.campaigns:
        top = Table(title="Top templates", title_justify="left")
        top.add_column("people", justify="right", no_wrap=True)
        top.add_column("DMs", justify="right", no_wrap=True)
        for i, _run in enumerate(summary.runs):
            top.add_column("caught" if i == 0 else "caught (2)", justify="right", no_wrap=True)
        top.add_column("text (first copy)", overflow="ellipsis", no_wrap=True, max_width=56)
        for c in summary.campaigns[:5]:
            caught = [
                str(sum(n for a, n in c["decisions"].get(i, {}).items() if a != "allow"))
                for i in range(len(summary.runs))
            ]
            top.add_row(
                str(c["recipients"]), str(c["messages"]), *caught, " ".join(c["text"].split())
            )
        console.print(top)


def _cells(values: list[int], total: int) -> list[str]:
    cells = [f"{v:,} ({v / total:.0%})" if total else str(v) for v in values]
    if len(values) > 1:
        diff = values[1] - values[0]
        cells.append(f"{diff:+,}" if diff else "=")
    return cells


# --- HTML ---------------------------------------------------------------------------------

COLOURS = {"allow": "#2f6f4f", "hold": "#9a5b00", "block": "#b3261e"}


def _bars(
    by_day: list[tuple[str, dict[str, int]]], width: int = 640, height: int = 200
) -> dict[str, Any]:
    """Stacked bars per day, as geometry for the template."""
    peak = max((sum(c.values()) for _, c in by_day), default=0) or 1
    n = max(len(by_day), 1)
    step = width / n
    bars = []
    for i, (day, counts) in enumerate(by_day):
        y = float(height)
        for action in ACTIONS:
            value = counts.get(action, 0)
            if not value:
                continue
            h = value / peak * height
            y -= h
            bars.append(
                {
                    "x": round(i * step + step * 0.1, 2),
                    "y": round(y, 2),
                    "w": round(max(step * 0.8, 1), 2),
                    "h": round(max(h, 0.5), 2),
                    "action": action,
                    "colour": COLOURS[action],
                    "label": f"{day}: {value:,} {action}",
                }
            )
    ticks = []
    if by_day:
        every = max(1, n // 6)
        ticks = [
            {"x": round(i * step + step / 2, 2), "label": day[5:]}
            for i, (day, _) in enumerate(by_day)
            if i % every == 0
        ]
    return {"width": width, "height": height, "bars": bars, "peak": peak, "ticks": ticks}


def _histogram(
    buckets: list[tuple[str, int]], width: int = 640, height: int = 200
) -> dict[str, Any]:
    peak = max((n for _, n in buckets), default=0) or 1
    step = width / max(len(buckets), 1)
    return {
        "width": width,
        "height": height,
        "bars": [
            {
                "x": round(i * step + step * 0.15, 2),
                "w": round(step * 0.7, 2),
                "h": round(max(n / peak * height, 0.5 if n else 0), 2),
                "cx": round(i * step + step / 2, 2),
                "label": label,
                "n": n,
            }
            for i, (label, n) in enumerate(buckets)
        ],
    }


def render_html(summary: Summary) -> str:
    env = Environment(
        loader=PackageLoader("proxy.backtest", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = env.get_template("report.html")
    return template.render(
        s=summary,
        runs=summary.runs,
        names=[Path(r.policy_file).name for r in summary.runs],
        charts=[_bars(r.by_day) for r in summary.runs],
        follow=_histogram(summary.follow_to_dm),
        follow_total=sum(n for _, n in summary.follow_to_dm),
        colours=COLOURS,
        actions=ACTIONS,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        max_listed=MAX_LISTED,
    )


def write_html(summary: Summary, path: Path) -> None:
    path.write_text(render_html(summary), encoding="utf-8")
