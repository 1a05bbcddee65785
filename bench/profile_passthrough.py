"""Where a pass-through request's CPU time goes: py-spy samples a real `dmgate serve`
(one worker, route `plain`, platform "none") while wrk loads it, then prints the frames
with the most samples, inclusive (a frame and what it calls) and exclusive (the frame
itself), and writes a flame graph (SVG) beside the collapsed stacks.

    pip install py-spy; apt-get install -y wrk
    python bench/profile_passthrough.py --seconds 10 --out /tmp/passthrough-profile
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.passthrough import start_dmgate, start_upstream  # noqa: E402
from bench.processes import free_port, stop  # noqa: E402


def top_frames(collapsed: Path, n: int) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    """(inclusive, exclusive, total samples) from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    exclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        frames = [_short(f) for f in stack.split(";")]
        total += samples
        for frame in set(frames):
            inclusive[frame] += samples
        exclusive[frames[-1]] += samples
    return inclusive.most_common(n), exclusive.most_common(n), total


def _short(frame: str) -> str:
    """`handle (proxy/gateway.py:97)` without the virtualenv's long prefix."""
    for marker in ("site-packages/", "/lib/python3"):
        if marker in frame:
            name, _, where = frame.partition(" (")
            return f"{name} ({where.split(marker, 1)[1]}"
    return frame.replace(str(ROOT) + "/", "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "dmgate-prof")
    args = parser.parse_args()
    for tool in ("wrk", "py-spy"):
        if not shutil.which(tool):
            print(f"{tool} is needed on PATH", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    upstream_port, port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="dmgate-prof-") as tmp:
        upstream = start_upstream(upstream_port)
        gate = start_dmgate(port, upstream_port, Path(tmp))
        url = f"http://127.0.0.1:{port}/plain/hello"
        try:
            subprocess.run(["wrk", "-t2", "-c50", "-d2s", url], capture_output=True, check=True)
            load = subprocess.Popen(
                ["wrk", "-t2", "-c50", f"-d{args.seconds + 2:g}s", url], stdout=subprocess.PIPE
            )
            for fmt, name in (("raw", "collapsed.txt"), ("flamegraph", "flamegraph.svg")):
                subprocess.run(
                    [
                        "py-spy",
                        "record",
                        "-p",
                        str(gate.pid),
                        "-d",
                        f"{args.seconds / 2:g}",
                        "-r",
                        "250",
                        "-f",
                        fmt,
                        "-o",
                        str(args.out / name),
                        "--nonblocking",
                    ],
                    capture_output=True,
                    check=True,
                )
            load.wait()
        finally:
            stop(gate)
            stop(upstream)
    inclusive, exclusive, total = top_frames(args.out / "collapsed.txt", args.top)
    print(f"py-spy, {total} samples of `dmgate serve` under wrk -t2 -c50 ({args.out})")
    for title, rows in (("inclusive", inclusive), ("exclusive", exclusive)):
        print(f"\n{title}:")
        for frame, samples in rows:
            print(f"  {samples / total:6.1%}  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
