"""Pass-through overhead: the same load against an upstream directly and through dmgate.

Starts, on loopback only, a hello-world upstream (aiohttp, its own process) and a real
`dmgate serve` in front of it (route `plain`, platform "none", SQLite in a temporary
directory, log level info), then measures in one run, with the same client and settings:

  throughput  wrk -t2 -c50: requests/s (and p50/p99 under that load)
  latency     wrk -t1 -c1:  p50/p99 of one request at a time, so that the difference is
              dmgate's own added latency rather than queueing

Direct and dmgate runs alternate for --rounds rounds and the median of each is reported,
so that a neighbour's load on a shared machine hits both sides alike. Prints
dmgate/direct throughput and the added p50/p99 in ms against the targets (throughput
>= 0.30x direct with one worker, added p50 <= 0.2 ms). Without `wrk` on PATH
(`apt-get install -y wrk`) an aiohttp load loop stands in; it is slower than dmgate, so
its ratio flatters dmgate and is marked as such. `dmgate serve` runs on uvloop where it is
installed (a dependency on Linux and macOS); `--stdlib-loop` runs it on asyncio's own loop
for comparison.

`--workers 1,2` measures `dmgate serve --workers N` for each N in the same run (the load
generator shares the cores with the workers, so on a small machine more workers help less
than they would with the load coming from elsewhere).

    python bench/passthrough.py                      # ~75 s
    python bench/passthrough.py --workers 1,2        # one and two workers against direct
    python bench/passthrough.py --seconds 10 --rounds 5
    python bench/passthrough.py --references         # + a bare aiohttp relay and nginx
    python bench/passthrough.py --workers 1,2 --upstream nginx  # workers, dmgate the limit

`--references` measures two relays that judge nothing beside dmgate, in the same rounds:
the floor of an aiohttp-to-aiohttp relay (a few lines on aiohttp's low-level server) and
nginx (one worker process, keep-alive to the upstream; left out when not on PATH). They
show how much of dmgate's figures is the stack and the machine rather than dmgate.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import free_port, stop, wait_ready  # noqa: E402

HELLO = b"Hello, World!"


@dataclass(frozen=True)
class Load:
    connections: int
    threads: int


THROUGHPUT = Load(connections=50, threads=2)
LATENCY = Load(connections=1, threads=1)


@dataclass(frozen=True)
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    command: str
    cpu_us: float | None = None  # CPU time per request of the serving process (Linux)
    idle: float | None = None  # the share of the machine's CPU time left idle (Linux)


# --- processes --------------------------------------------------------------------------


def serve_upstream(port: int) -> None:
    """The upstream: aiohttp's hello world (the ~37k req/s reference of research/tooling)."""
    from aiohttp import web

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(body=HELLO, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def start_upstream(port: int, kind: str, tmp: Path) -> subprocess.Popen[bytes]:
    if kind == "nginx":
        return start_nginx_upstream(port, tmp)
    proc = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(port)])
    wait_ready(f"http://127.0.0.1:{port}/", proc, "the upstream")
    return proc


def start_nginx_upstream(port: int, tmp: Path) -> subprocess.Popen[bytes]:
    """`--upstream nginx`: the same answer from one nginx worker, at a fraction of the
    aiohttp upstream's CPU, which leaves the cores to the relay: how workers scale when
    the relay is what limits (on a 2-core machine the aiohttp upstream and wrk take most
    of one core)."""
    nginx = shutil.which("nginx")
    if nginx is None:
        raise SystemExit("--upstream nginx: nginx is not on PATH (apt-get install -y nginx)")
    return run_nginx(
        nginx,
        tmp / "nginx-upstream",
        "  keepalive_requests 1000000;\n"
        f"  server {{ listen 127.0.0.1:{port};\n"
        f'    location / {{ default_type text/plain; return 200 "{HELLO.decode()}"; }} }}\n',
        f"http://127.0.0.1:{port}/",
        "the nginx upstream",
    )


def run_nginx(nginx: str, home: Path, http: str, url: str, what: str) -> subprocess.Popen[bytes]:
    """One nginx worker process in `home`, `http` the directives of its http block (logs
    off); returned once `url` answers."""
    home.mkdir()
    (home / "nginx.conf").write_text(
        "worker_processes 1; daemon off; pid nginx.pid; error_log error.log;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "  access_log off;\n"
        "  client_body_temp_path body; proxy_temp_path proxy;\n"
        f"{http}"
        "}\n"
    )
    proc = subprocess.Popen(
        [nginx, "-p", str(home), "-c", str(home / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(url, proc, what)
    return proc


def serve_relay(port: int, upstream_port: int) -> None:
    """The floor of an aiohttp relay (`--references`): aiohttp's low-level server on
    uvloop, one pooled `ClientSession` set up as dmgate's (no decompression, cookies or
    automatic headers), each answer read whole and sent back. Nothing is judged, checked,
    counted, logged or copied: no header is forwarded either way but the type."""
    import aiohttp
    import uvloop
    from aiohttp import web

    async def main() -> None:
        session = aiohttp.ClientSession(
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        base = f"http://127.0.0.1:{upstream_port}"

        async def relay(request: web.BaseRequest) -> web.Response:
            async with session.request(request.method, base + request.path_qs) as upstream:
                body = await upstream.read()
                return web.Response(
                    status=upstream.status, body=body, content_type=upstream.content_type
                )

        runner = web.ServerRunner(web.Server(relay), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    uvloop.run(main())


def start_references(
    tmp: Path, upstream_port: int
) -> list[tuple[str, subprocess.Popen[bytes], str]]:
    """The relays `--references` measures beside dmgate: the bare aiohttp relay, and nginx
    (one worker process, keep-alive to the upstream) where it is on PATH. Each as
    (name, process, URL)."""
    port = free_port()
    relay = subprocess.Popen(
        [sys.executable, __file__, "--serve-relay", str(port), str(upstream_port)]
    )
    out = [("aiohttp relay", relay, f"http://127.0.0.1:{port}/hello")]
    wait_ready(out[-1][2], relay, "the aiohttp relay")
    nginx = shutil.which("nginx")
    if nginx is None:
        print("(no nginx on PATH: its reference row is left out; apt-get install -y nginx)")
        return out
    port = free_port()
    url = f"http://127.0.0.1:{port}/hello"
    proc = run_nginx(
        nginx,
        tmp / "nginx",
        f"  upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}\n"
        f"  server {{ listen 127.0.0.1:{port};\n"
        "    location / { proxy_pass http://up; proxy_http_version 1.1;\n"
        '      proxy_set_header Connection ""; } }\n',
        url,
        "nginx",
    )
    out.append(("nginx", proc, url))
    return out


def start_dmgate(
    port: int, upstream_port: int, home: Path, stdlib_loop: bool = False, workers: int = 1
) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DMGATE_")},
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "DMGATE_HOST": "127.0.0.1",
        "DMGATE_PORT": str(port),
        "DMGATE_DATABASE_URL": f"sqlite:///{home / 'dmgate.db'}",
        "DMGATE_ROUTES": json.dumps(
            {"plain": {"upstream": f"http://127.0.0.1:{upstream_port}", "platform": "none"}}
        ),
        "DMGATE_LOG_FORMAT": "json",
        "DMGATE_LOG_LEVEL": "info",
        "DMGATE_REVIEW_TOKENS": "bench:bench-token-0123456789abcdef",
        "DMGATE_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "DMGATE_WORKERS": str(workers),
    }
    if stdlib_loop:  # for comparison: hide uvloop so `dmgate serve` falls back
        code = (
            "import sys; sys.modules['uvloop'] = None; from proxy.cli import main; sys.exit(main())"
        )
        cmd = [sys.executable, "-c", code, "serve"]
    else:
        cmd = [sys.executable, "-m", "proxy.cli", "serve"]
    with open(home / "dmgate.log", "wb") as log:  # the child keeps its own copy
        proc = subprocess.Popen(cmd, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)
    wait_ready(f"http://127.0.0.1:{port}/healthz", proc, "dmgate")
    return proc


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its children (a supervisor's workers) so
    far (None where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(c)) or 0.0 for c in children)


def machine_ticks() -> tuple[int, int] | None:
    """(idle, all) CPU ticks of the whole machine so far (None where /proc is missing)."""
    try:
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    return ticks[3] + ticks[4], sum(ticks)  # idle + iowait


def measured(
    measure: Callable[[str, Load, float], Figures], url: str, load: Load, seconds: float, pid: int
) -> Figures:
    """One measurement, with the serving process's CPU time per request (unlike req/s,
    that figure hardly moves when neighbours load a shared machine) and how much of the
    machine stayed idle (none: more workers cannot help, the cores are all busy)."""
    before, ticks, started = cpu_seconds(pid), machine_ticks(), time.monotonic()
    figures = measure(url, load, seconds)
    after, ticks_after, elapsed = cpu_seconds(pid), machine_ticks(), time.monotonic() - started
    if ticks is not None and ticks_after is not None and ticks_after[1] > ticks[1]:
        idle = (ticks_after[0] - ticks[0]) / (ticks_after[1] - ticks[1])
        figures = replace(figures, idle=idle)
    if before is None or after is None or not figures.rps:
        return figures
    return replace(figures, cpu_us=(after - before) / (figures.rps * elapsed) * 1e6)


# --- load generators --------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNIT_MS[unit]


def wrk(url: str, load: Load, seconds: float) -> Figures:
    cmd = [
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{seconds:g}s",
        "--latency",
        url,
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in errs.groups()) if errs else 0)
    return Figures(rps, p50, p99, errors, shlex.join(cmd))


def aiohttp_loop(url: str, load: Load, seconds: float) -> Figures:
    """Fallback client: `connections` workers, each sending one request at a time until
    the time is up (and at most 1,000,000 requests in all)."""
    import aiohttp

    async def run() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        errors = 0
        connector = aiohttp.TCPConnector(limit=load.connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            started = time.perf_counter()
            deadline = started + seconds

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < deadline and len(latencies) < 1_000_000:
                    t0 = time.perf_counter()
                    async with session.get(url) as r:
                        await r.read()
                        if r.status != 200:
                            errors += 1
                    latencies.append(time.perf_counter() - t0)

            await asyncio.gather(*(worker() for _ in range(load.connections)))
            return latencies, errors, time.perf_counter() - started

    latencies, errors, elapsed = asyncio.run(run())
    cuts = statistics.quantiles(latencies, n=100)
    command = f"aiohttp load loop: {load.connections} connections, {seconds:g} s, GET {url}"
    return Figures(len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000, errors, command)


# --- the run ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="per measurement (5)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument(
        "--stdlib-loop", action="store_true", help="run dmgate on asyncio's loop, not uvloop"
    )
    parser.add_argument(
        "--workers",
        default="1",
        help="comma-separated worker counts to measure side by side (1)",
    )
    parser.add_argument(
        "--references",
        action="store_true",
        help="also measure a bare aiohttp relay and nginx (if on PATH): the floor of the stack",
    )
    parser.add_argument(
        "--upstream",
        choices=("aiohttp", "nginx"),
        default="aiohttp",
        help="the upstream: aiohttp's hello world (the reference of the targets), or nginx"
        " returning the same body at a fraction of the CPU (how workers scale when dmgate"
        " is what limits)",
    )
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-relay", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.worker_counts = [int(n) for n in args.workers.split(",")]
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    if args.serve_relay:
        serve_relay(*args.serve_relay)
        return 0

    measure = wrk if shutil.which("wrk") else aiohttp_loop
    upstream_port = free_port()
    urls = {"direct": f"http://127.0.0.1:{upstream_port}/hello"}
    runs: dict[tuple[str, str], list[Figures]] = {}
    trouble: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dmgate-bench-") as tmp:
        upstream = start_upstream(upstream_port, args.upstream, Path(tmp))
        serving = {"direct": upstream.pid}
        gates: list[subprocess.Popen[bytes]] = []
        try:
            for n in args.worker_counts:
                home, port = Path(tmp) / f"workers-{n}", free_port()
                home.mkdir()
                gates.append(start_dmgate(port, upstream_port, home, args.stdlib_loop, n))
                urls[_name(n)] = f"http://127.0.0.1:{port}/plain/hello"
                serving[_name(n)] = gates[-1].pid
                with urllib.request.urlopen(urls[_name(n)], timeout=5) as r:
                    assert r.read() == HELLO, "dmgate did not relay the upstream's answer"
            if args.references:
                for name, proc, url in start_references(Path(tmp), upstream_port):
                    gates.append(proc)
                    urls[name], serving[name] = url, proc.pid
            for url in urls.values():  # warm-up: connection pools, caches
                measure(url, THROUGHPUT, min(2.0, args.seconds))
            for kind, load in (("throughput", THROUGHPUT), ("latency", LATENCY)):
                for _ in range(args.rounds):
                    for name, url in urls.items():
                        figures = measured(measure, url, load, args.seconds, serving[name])
                        runs.setdefault((name, kind), []).append(figures)
        finally:
            for gate in gates:
                stop(gate)
            stop(upstream)
        for log in Path(tmp).glob("workers-*/dmgate.log"):
            trouble += [
                line
                for line in log.read_text(errors="replace").splitlines()
                if '"level": "error"' in line or "Traceback" in line or "Error handling" in line
            ]
    results = {key: _median(figures) for key, figures in runs.items()}
    report(results, measure is wrk, args)
    if trouble:
        print(f"\ndmgate logged {len(trouble)} error line(s), first: {trouble[0][:300]}")
        return 1
    return 0


def _name(workers: int) -> str:
    return "dmgate" if workers == 1 else f"dmgate w={workers}"


def _median(figures: list[Figures]) -> Figures:
    """The run with the median throughput (its latencies with it)."""
    return sorted(figures, key=lambda f: f.rps)[len(figures) // 2]


def report(
    results: dict[tuple[str, str], Figures], with_wrk: bool, args: argparse.Namespace
) -> None:
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    loop = "asyncio" if args.stdlib_loop or not has_uvloop else "uvloop"
    print(
        f"pass-through benchmark: loopback, {os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}, dmgate on {loop}; median of {args.rounds} alternating "
        f"rounds of {args.seconds:g} s; upstream: {args.upstream}"
    )
    if not with_wrk:
        print("(no wrk on PATH: the aiohttp load loop is the bottleneck, ratios flatter dmgate)")
    print("commands:")
    for (name, kind), f in results.items():
        print(f"  {name:6} {kind:10} {f.command}")
    print()
    names = ["direct", *(_name(n) for n in args.worker_counts)]
    references = list(dict.fromkeys(name for name, _ in results if name not in names))
    names += references
    print(
        f"{'':22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'CPU µs/req':>12}"
        f"{'idle':>7}"
    )
    for kind, load in (("throughput", THROUGHPUT), ("latency", LATENCY)):
        for name in names:
            f = results[name, kind]
            label = f"{name} c={load.connections}"
            cpu = "" if f.cpu_us is None else f"{f.cpu_us:.0f}"
            idle = "" if f.idle is None else f"{f.idle:.0%}"
            print(
                f"{label:22}{f.rps:>10.0f}{f.p50_ms:>10.3f}{f.p99_ms:>10.3f}{f.errors:>8}{cpu:>12}"
                f"{idle:>7}"
            )
    print(
        "(CPU µs/req: of the upstream for direct rows, of dmgate (all workers) or the"
        " reference relay for the rest; idle: the machine's CPU left unused, all cores,"
        " while wrk, the upstream and the relay ran)"
    )
    print()
    direct, d = results["direct", "throughput"], results["direct", "latency"]
    for n in args.worker_counts:
        g = results[_name(n), "latency"]
        ratio = results[_name(n), "throughput"].rps / direct.rps
        target = 0.30 if n == 1 else 0.0
        judged = n == 1 and args.upstream == "aiohttp"  # the target's reference upstream
        print(f"{_name(n)}: throughput {ratio:.2f}x direct", end="")
        print(f" (target >= {target:.2f}x: {_ok(ratio >= target)})" if judged else "")
        added_p50, added_p99 = g.p50_ms - d.p50_ms, g.p99_ms - d.p99_ms
        print(
            f"   added latency, one request at a time: p50 {added_p50:+.3f} ms, "
            f"p99 {added_p99:+.3f} ms (target p50 <= 0.2 ms: {_ok(added_p50 <= 0.2)})"
        )
    for name in references:
        ratio = results[name, "throughput"].rps / direct.rps
        g = results[name, "latency"]
        print(
            f"{name} (reference, nothing judged): throughput {ratio:.2f}x direct; added "
            f"latency p50 {g.p50_ms - d.p50_ms:+.3f} ms, p99 {g.p99_ms - d.p99_ms:+.3f} ms"
        )
    if len(args.worker_counts) > 1:
        by = {n: results[_name(n), "throughput"].rps for n in args.worker_counts}
        best = max(by, key=by.__getitem__)
        print(f"most throughput with {best} worker(s): {by[best]:.0f} req/s")
        first = args.worker_counts[0]
        idle = results[_name(first), "throughput"].idle
        if best == first and idle is not None:
            print(
                f"   (with {first} worker(s) the machine's cores were already {1 - idle:.0%}"
                " busy: wrk, the upstream and dmgate share them, so more workers had little"
                " CPU left to use. With the load and the upstream on other machines, each"
                " worker adds up to 1e6 / (CPU µs/req) req/s.)"
            )


def _ok(passed: bool) -> str:
    return "met" if passed else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
