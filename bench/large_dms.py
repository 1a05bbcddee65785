"""Does judging huge DMs stall the event loop? `/healthz` latency while a real `dmgate serve`
judges 1 MB DMs, against the same probe on an idle dmgate, in one run.

Each DM carries ~1 MB of text (far over any platform's limit: X takes 10,000 characters).
dmgate judges at most 10,000 characters of a DM's text (`MAX_JUDGED_TEXT`), so a DM costs
milliseconds of event loop, not the second its whole text would take to fingerprint.

    python bench/large_dms.py            # ~20 s
    python bench/large_dms.py --dms 40 --concurrency 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.processes import free_port, stop, wait_ready  # noqa: E402
from tests.fakes.x_upstream import FakeXThread  # noqa: E402

POLICY = """
policies:
  template_reuse: {action: hold, min_recipients: 3, window: 24h}
  first_contact_pitch: {action: hold}
"""
TOKEN = "bench-large-dm-token"


def probe(url: str, seconds: float, out: list[float], stop_flag: threading.Event) -> None:
    """GET /healthz back to back, recording each latency."""
    with httpx.Client(base_url=url, timeout=10) as c:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop_flag.is_set():
            t0 = time.perf_counter()
            c.get("/healthz")
            out.append(time.perf_counter() - t0)
            time.sleep(0.005)


def send_large(url: str, n: int, size: int, worker: int, results: list[float]) -> None:
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do".split()
    text = " ".join(words[(i * 7 + worker) % len(words)] for i in range(size // 6))[:size]
    body = json.dumps({"text": text}).encode()
    with httpx.Client(base_url=url, timeout=60) as c:
        for i in range(n):
            t0 = time.perf_counter()
            r = c.post(
                f"/x/2/dm_conversations/with/{5_000 + worker * 1000 + i}/messages",
                content=body,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            )
            assert "DMGate-Decision" in r.headers, r.text[:200]
            results.append(time.perf_counter() - t0)


def summary(xs: list[float]) -> str:
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
    return (
        f"n={len(xs):4d}  p50 {statistics.median(xs) * 1000:6.2f} ms  "
        f"p99 {p99 * 1000:6.2f} ms  max {xs[-1] * 1000:6.2f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dms", type=int, default=20, help="DMs per sender")
    ap.add_argument("--concurrency", type=int, default=4, help="senders at once")
    ap.add_argument("--size", type=int, default=1_000_000, help="characters of text per DM")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp, FakeXThread() as fx:
        fx.state.record = False
        fx.state.add_user("100", token=TOKEN)
        home = Path(tmp)
        (home / "policies.yaml").write_text(POLICY)
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DMGATE_")},
            "DMGATE_PORT": str(port),
            "DMGATE_DATABASE_URL": f"sqlite:///{home / 'dmgate.db'}",
            "DMGATE_POLICY_FILE": str(home / "policies.yaml"),
            "DMGATE_ROUTES": json.dumps({"x": {"upstream": fx.url, "platform": "x"}}),
            "DMGATE_REVIEW_TOKENS": "bench:bench-token-0123456789abcdef",
            "DMGATE_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "DMGATE_MAX_DM_BODY": str(4 * 1024 * 1024),
            "DMGATE_LOG_LEVEL": "warning",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", "serve"],
            env=env,
            cwd=home,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url + "/healthz", proc, "dmgate")
            idle: list[float] = []
            probe(url, 3.0, idle, threading.Event())

            busy: list[float] = []
            dm_times: list[float] = []
            done = threading.Event()
            prober = threading.Thread(target=probe, args=(url, 600.0, busy, done))
            prober.start()
            senders = [
                threading.Thread(target=send_large, args=(url, args.dms, args.size, w, dm_times))
                for w in range(args.concurrency)
            ]
            started = time.perf_counter()
            for t in senders:
                t.start()
            for t in senders:
                t.join()
            elapsed = time.perf_counter() - started
            done.set()
            prober.join()
        finally:
            stop(proc)

    print(f"{args.concurrency} senders x {args.dms} DMs of {args.size:,} characters")
    print(f"/healthz, idle:             {summary(idle)}")
    print(f"/healthz, judging huge DMs: {summary(busy)}")
    print(f"huge DM round trip:         {summary(dm_times)}")
    p99 = lambda xs: sorted(xs)[int(len(xs) * 0.99)]  # noqa: E731
    print(
        f"p99 ratio busy/idle: {p99(busy) / p99(idle):.1f}x; "
        f"{len(dm_times) / elapsed:.1f} huge DMs/s; target: /healthz max < 100 ms "
        f"({'met' if max(busy) < 0.1 else 'missed'})"
    )


if __name__ == "__main__":
    main()
