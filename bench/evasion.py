"""Evasion benchmark for template_reuse: campaigns varied the way DM-automation suites vary
them, against hand-written genuine first messages, end to end through a real `dmgate serve`
with the shipped policy file — the old detector and the new one in one run.

    python bench/evasion.py                      # old = merge-base with main, new = this tree
    python bench/evasion.py --old-ref v0.3 --seed 2

Each sending account gets its own stream, every DM to a distinct recipient, campaign copies
interleaved at random with the genuine first messages (bench/evasion_genuine.py) and the
short replies:
- each account first reads its follower list through dmgate, as auto-DM suites do, so
  dmgate knows every recipient's display name (old and new detector alike);
- one account per spintax variant (bench/evasion_spintax.py, seeded): 15 templates x 12
  recipients; variants add, in order, spintax, emoji, zero-width characters and look-alike
  letters, shuffled sentences to "merge fields + links only";
- one account for the hand-written AI-style campaigns (bench/evasion_ai.py): a personal
  opener per DM, the offer and link reworded, per-recipient link parameters;
- one more for the same campaigns with every copy's link through another URL shortener
  (bit.ly, tinyurl.com, lnkd.in, t.co, buff.ly, ow.ly), so that copies share no link host.
Recall is the share of 4th-and-later copies held (min_recipients 3 holds from the 3rd);
false holds are genuine first messages or short replies held, over every account.

The old detector runs from `git archive` of --old-ref (a temporary copy of that tree, the
same Python environment, its own `dmgate serve`). The results measured on the project
machine are in bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: import the repo's packages
sys.path.insert(0, str(ROOT / "bench"))

from evasion_ai import AI_CAMPAIGNS  # noqa: E402
from evasion_genuine import GENUINE, SHORT_REPLIES  # noqa: E402
from evasion_spintax import FIRST, TEMPLATES, VARIANTS, copy, recipients  # noqa: E402

from tests.fakes.x_upstream import FakeXThread  # noqa: E402
from tests.support import DMGate  # noqa: E402

COPIES = 12
SURNAMES = ["Smith", "Okafor", "Novak", "Silva", "Kowalski", "Tanaka", "Haddad", "Berg"]
# The AI campaigns' links: their own domains with per-recipient parameters, or a shortener.
AI_LINKS = [
    "https://{c}.example-offer.com/start?ref={r}",
    "https://www.{c}.io/?utm_source=dm&utm_campaign=q4&rid={r}",
    "https://bit.ly/{r}",
]
# What suites rotate per copy so that the copies share no link host: shorteners, or a
# freshly registered domain per copy (FRESH_DOMAIN).
FRESH_DOMAIN = "https://{c}.com/start?ref={r}"
SHORTENED = [
    "https://bit.ly/{r}",
    "https://tinyurl.com/{r}",
    "lnkd.in/{r}",
    "https://t.co/{r}",
    "https://buff.ly/{r}",
    "https://ow.ly/{r}",
]


@dataclass(frozen=True)
class DM:
    account: str
    group: str  # "spintax:<variant>", "ai", "genuine", "short"
    campaign: str  # template or campaign name ("" for genuine and short)
    index: int  # the copy's position in its campaign (0-based)
    text: str
    recipient: str
    name: str  # the recipient's display name, as the platform's user objects carry it


def _interleave(rnd: random.Random, campaigns: dict[str, list[str]]) -> list[tuple[str, int, str]]:
    """Campaign copies and genuine messages in one random order, each campaign's copies in
    their own order."""
    items = [(name, i) for name, texts in campaigns.items() for i in range(len(texts))]
    rnd.shuffle(items)
    seen: dict[str, int] = defaultdict(int)
    out = []
    for name, _ in items:  # the k-th slot a campaign drew gets its k-th copy
        index = seen[name]
        seen[name] += 1
        out.append((name, index, campaigns[name][index]))
    return out


def _background() -> dict[str, list[str]]:
    """Genuine and short messages, each its own one-message "campaign"."""
    out = {f"genuine:{i}": [t] for i, t in enumerate(GENUINE)}
    out.update({f"short:{i}": [t] for i, t in enumerate(SHORT_REPLIES)})
    return out


def spintax_stream(account: str, variant: str, seed: int) -> list[DM]:
    rnd = random.Random(f"{seed}:{variant}")
    campaigns = _background()
    names: dict[tuple[str, int], str] = {}
    for t, template in enumerate(TEMPLATES):
        who = recipients(rnd, COPIES, 0)
        campaigns[f"t{t}"] = [copy(template, variant, w, rnd) for w in who]
        names.update({(f"t{t}", i): w.first_name for i, w in enumerate(who)})
    return _stream(account, f"spintax:{variant}", campaigns, rnd, names)


def ai_stream(account: str, seed: int, rotate: str = "") -> list[DM]:
    """The AI-style campaigns, each with its own link; with `rotate` "shorteners", every
    copy goes through another URL shortener instead, with "domains" to a domain of its own,
    so that no two copies need share a link host."""
    rnd = random.Random(f"{seed}:ai")
    campaigns = _background()
    for c, (name, texts) in enumerate(AI_CAMPAIGNS.items()):
        campaigns[name] = [
            t.format(link=_ai_link(rnd, AI_LINKS[c % len(AI_LINKS)], name, rotate)) for t in texts
        ]
    return _stream(account, f"ai:{rotate}" if rotate else "ai", campaigns, rnd)


def _ai_link(rnd: random.Random, link: str, campaign: str, rotate: str) -> str:
    slug = campaign.replace("_", "")
    if rotate == "domains":
        domain = f"{slug}-{rnd.getrandbits(20):x}"
        return FRESH_DOMAIN.format(c=domain, r=f"{rnd.getrandbits(32):x}")
    template = rnd.choice(SHORTENED) if rotate == "shorteners" else link
    return template.format(c=slug, r=f"{rnd.getrandbits(32):x}")


def _stream(
    account: str,
    group: str,
    campaigns: dict[str, list[str]],
    rnd: random.Random,
    names: dict[tuple[str, int], str] | None = None,
) -> list[DM]:
    dms = []
    # Recipients are the account's own followers: ids of their own per account, so that
    # every account's follower list names them as its stream does (with one range for
    # all, the last stream's names overwrote the others' in the fake upstream).
    base = int(account) * 100_000
    for n, (name, index, text) in enumerate(_interleave(rnd, campaigns)):
        kind = name.split(":", 1)[0]
        grp = kind if kind in ("genuine", "short") else group
        first = (names or {}).get((name, index)) or rnd.choice(FIRST)
        full = f"{first} {rnd.choice(SURNAMES)}"
        dms.append(DM(account, grp, name, index, text, str(base + n), full))
    return dms


def run(dmgate_env: dict[str, str], streams: list[list[DM]], tmp: Path) -> dict[DM, str]:
    """Send every stream through a fresh `dmgate serve`; the decision of each DM."""
    decisions: dict[DM, str] = {}
    with FakeXThread() as fake:
        fake.state.record = False
        accounts = {dm.account for s in streams for dm in s}
        for account in accounts:
            fake.state.add_user(account, token=f"token-{account}")
        for stream in streams:  # every recipient follows the account, with a display name
            for dm in stream:
                fake.state.add_user(dm.recipient, name=dm.name)
            fake.state.followers[stream[0].account] = [dm.recipient for dm in stream]
        routes = f'{{"x": {{"upstream": "{fake.url}", "platform": "x"}}}}'
        gate = DMGate(tmp, {"DMGATE_ROUTES": routes, **dmgate_env}).start()
        try:
            client = gate.client
            for account in accounts:  # tools ask who they are, then read their followers
                auth = {"Authorization": f"Bearer token-{account}"}
                client.get("/x/2/users/me", headers=auth)
                read_followers(client, account, auth)
            for stream in streams:
                for dm in stream:
                    r = client.post(
                        f"/x/2/dm_conversations/with/{dm.recipient}/messages",
                        json={"text": dm.text},
                        headers={"Authorization": f"Bearer token-{dm.account}"},
                    )
                    decisions[dm] = r.headers.get("DMGate-Decision", f"status {r.status_code}")
        finally:
            gate.stop()
    return decisions


def read_followers(client: httpx.Client, account: str, auth: dict[str, str]) -> None:
    """What auto-DM suites do first: page through the account's followers (dmgate learns
    their names and handles from the user objects)."""
    params: dict[str, str] = {"max_results": "1000"}
    while True:
        page = client.get(f"/x/2/users/{account}/followers", params=params, headers=auth)
        token = page.json().get("meta", {}).get("next_token")
        if page.status_code != 200 or not token:
            return
        params["pagination_token"] = token


def table(decisions: dict[DM, str]) -> dict[str, tuple[int, int]]:
    """row -> (held, of)."""
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for dm, decision in decisions.items():
        held = decision.startswith("hold") or decision.startswith("block")
        if dm.group in ("genuine", "short"):
            row = rows[f"false holds: {dm.group}"]
        elif dm.index >= 3:
            row = rows[dm.group]
        else:
            continue
        row[0] += held
        row[1] += 1
    return {k: (v[0], v[1]) for k, v in rows.items()}


def old_tree(ref: str, into: Path) -> Path:
    """`ref` of this repository, extracted (git archive) into `into`."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-ref", default="", help="git ref of the old detector")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    ref = (
        args.old_ref
        or subprocess.run(
            ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    streams = [spintax_stream(str(100 + i), v, args.seed) for i, v in enumerate(VARIANTS)]
    streams.append(ai_stream("200", args.seed))
    streams.append(ai_stream("201", args.seed, rotate="shorteners"))
    streams.append(ai_stream("202", args.seed, rotate="domains"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        old = old_tree(ref, base / "old")
        for name, path in (("old", old), ("new", ROOT)):
            work = base / f"run-{name}"
            work.mkdir()
            started = time.perf_counter()
            env = {"PYTHONPATH": str(path), "DMGATE_LOG_LEVEL": "warning"}
            results[name] = table(run(env, streams, work))
            print(
                f"{name} ({ref[:10] if name == 'old' else 'this tree'}): "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    print_table(results)


def print_table(results: dict[str, dict[str, tuple[int, int]]]) -> None:
    order = [f"spintax:{v}" for v in VARIANTS] + [
        "ai",
        "ai:shorteners",
        "ai:domains",
        "false holds: genuine",
        "false holds: short",
    ]
    label = {
        "spintax:merge_only": "merge fields + links only (no spintax)",
        "spintax:spintax": "spintax (3-6 slots, 2-4 options) + merge fields + links",
        "spintax:emoji": "+ emoji",
        "spintax:disguised": "+ zero-width characters and look-alike letters in 1-3 words",
        "spintax:shuffled": "+ sentence order shuffled",
        "ai": "AI-style campaigns (hand-written)",
        "ai:shorteners": "+ another URL shortener for every copy",
        "ai:domains": "+ a domain of its own for every copy",
        "false holds: genuine": "false holds: genuine first messages",
        "false holds: short": "false holds: short replies",
    }
    print(f"| {'DMs (4th-and-later copies held / false holds)':<62} | {'old':>17} | {'new':>17} |")
    print(f"|{'-' * 64}|{'-' * 19}|{'-' * 19}|")
    for row in order:
        cells = []
        for name in ("old", "new"):
            held, of = results[name].get(row, (0, 0))
            cells.append(f"{held}/{of} ({held / of:.1%})" if of else "-")
        print(f"| {label[row]:<62} | {cells[0]:>17} | {cells[1]:>17} |")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
