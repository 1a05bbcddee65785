"""Forward-mode latency: direct vs reverse mode vs forward mode (intercepted, blind tunnel).

Starts, on loopback only, two HTTPS fake X upstreams (tests/fakes/x_upstream.py, one
process of their own; certificates from a throwaway test CA, tests/fakes/tls.py) and a
real `dmgate serve` (SQLite and its own CA in a temporary directory), then sends the same
small pass-through GET (`/_test/echo`, no DM) one at a time over one keep-alive connection
per mode:

  direct       client -> https://127.0.0.1:UP (TLS server name api.x.com, test CA)
  reverse      client -> http://127.0.0.1:GATE/x/_test/echo -> dmgate -> TLS upstream
  intercepted  client --proxy--> https://api.x.com/_test/echo (dmgate's CA trusted);
               dmgate terminates TLS and forwards to the route's TLS upstream
  tunnel       client --proxy--> https://localhost:UP2 (test CA), tunnelled blindly
               (DMGATE_TUNNEL_HOSTS, DMGATE_TUNNEL_PRIVATE=true)

Requests go in blocks of --block per mode, the modes taking turns in a rotating order, so
that drift on a shared machine hits every mode alike. Prints p50/p99 and requests/s per
mode, the ratio to direct and the latency added over reverse mode.

Then the first-request cost for a host dmgate has not issued a certificate for yet: for
each of --hosts extra hosts of the route (h1.example.com, ...), a request on a fresh
connection the first time (leaf certificate issued; dmgate also opens its upstream
connection for that TLS server name) and a second time (certificate cached), plus the
issuing alone (`LeafCertificates.context_for`, in this process).

    python bench/forward_mode.py                 # ~10 s
    python bench/forward_mode.py --requests 5000 --hosts 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import free_port, stop, wait_ready  # noqa: E402

TUNNEL_HOST = "localhost"
ROUTE_HOST = "api.x.com"
PATH = "/_test/echo"


# --- processes --------------------------------------------------------------------------


def serve_upstreams(spec: str) -> None:
    """The upstreams: the fake X app on one TLS port per (port, cert, key) entry."""
    from aiohttp import web

    from tests.fakes.x_upstream import FakeX

    async def serve() -> None:
        runner = web.AppRunner(FakeX().app(), access_log=None)
        await runner.setup()
        for port, cert, key in json.loads(spec):
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())


def start_upstreams(
    sites: list[tuple[int, Path, Path]], client: ssl.SSLContext
) -> subprocess.Popen[bytes]:
    spec = json.dumps([[port, str(cert), str(key)] for port, cert, key in sites])
    proc = subprocess.Popen([sys.executable, __file__, "--serve-upstreams", spec], cwd=ROOT)
    try:
        for port, _, _ in sites:  # the certificates name 127.0.0.1 too
            wait_ready(f"https://127.0.0.1:{port}{PATH}", proc, "the fake upstream", client)
    except BaseException:
        stop(proc)
        raise
    return proc


def start_dmgate(
    port: int,
    upstream_port: int,
    tunnel_port: int,
    hosts: list[str],
    upstream_ca: Path,
    home: Path,
) -> subprocess.Popen[bytes]:
    """`dmgate serve` in `home` (database and CA there)."""
    route = {
        "upstream": f"https://127.0.0.1:{upstream_port}",
        "platform": "x",
        "hosts": hosts,
        "ca_bundle": str(upstream_ca),
    }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DMGATE_")},
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "DMGATE_HOST": "127.0.0.1",
        "DMGATE_PORT": str(port),
        "DMGATE_DATABASE_URL": f"sqlite:///{home / 'dmgate.db'}",
        "DMGATE_ROUTES": json.dumps({"x": route}),
        "DMGATE_TUNNEL_HOSTS": f"{TUNNEL_HOST}:{tunnel_port}",
        "DMGATE_TUNNEL_PRIVATE": "true",
        "DMGATE_LOG_FORMAT": "json",
        "DMGATE_LOG_LEVEL": "info",
        "DMGATE_REVIEW_TOKENS": "bench:bench-token-0123456789abcdef",
        "DMGATE_SECRET_KEY": "bench-secret-key-0123456789abcdef",
    }
    cmd = [sys.executable, "-m", "proxy.cli", "serve"]
    with open(home / "dmgate.log", "wb") as log:  # the child keeps its own copy
        proc = subprocess.Popen(cmd, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", proc, "dmgate")
    except BaseException:
        stop(proc)
        raise
    return proc


# --- the client ---------------------------------------------------------------------------


@dataclass
class Mode:
    """One way to the upstream, with its own session (one keep-alive connection)."""

    name: str
    label: str
    url: str
    options: dict[str, Any]
    expect_host: str  # the Host the upstream must see
    latencies: list[float] = field(default_factory=list)
    busy: float = 0.0  # wall-clock seconds spent in timed blocks
    errors: int = 0
    connections: int = 0


@dataclass(frozen=True)
class FirstRequests:
    first: list[float]  # seconds, fresh connection, host new to dmgate
    second: list[float]  # fresh connection, same host again (certificate cached)
    direct: list[float]  # fresh connection straight to the upstream (TLS handshake)
    issue: list[float]  # LeafCertificates.context_for alone, in this process


def connection_counter(target: Mode) -> Any:
    import aiohttp

    async def created(*_: Any) -> None:
        target.connections += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(created)
    return trace


async def timed_block(session: Any, mode: Mode, n: int, record: bool) -> None:
    started = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        async with session.get(mode.url, **mode.options) as r:
            await r.read()
            ok = r.status == 200
        elapsed = time.perf_counter() - t0
        if record:
            mode.latencies.append(elapsed)
            mode.errors += not ok
    if record:
        mode.busy += time.perf_counter() - started


async def check(session: Any, mode: Mode) -> None:
    """The first answer must be the fake's echo, with the Host the tool addressed."""
    async with session.get(mode.url, **mode.options) as r:
        body = await r.text()
        if r.status != 200:
            raise SystemExit(f"{mode.name}: {r.status} {body[:300]}")
    echo = json.loads(body)
    host = next((v for k, v in echo["headers"] if k.lower() == "host"), None)
    if echo["path"] != PATH or host != mode.expect_host:
        raise SystemExit(f"{mode.name}: upstream saw {echo['path']} Host {host}")


async def keepalive_runs(modes: list[Mode], requests: int, block: int, warmup: int) -> None:
    import aiohttp

    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=60),
            trace_configs=[connection_counter(p)],
        )
        for p in modes
    ]
    try:
        for session, mode in zip(sessions, modes, strict=True):
            await check(session, mode)
            await timed_block(session, mode, warmup, record=False)
        rounds = -(-requests // block)
        for i in range(rounds):
            n = min(block, requests - i * block)
            order = list(range(len(modes)))
            order = order[i % len(order) :] + order[: i % len(order)]  # rotate who goes first
            for j in order:
                await timed_block(sessions[j], modes[j], n, record=True)
    finally:
        for session in sessions:
            await session.close()


async def fresh_request(url: str, options: dict[str, Any]) -> float:
    """One request on a new connection (new session), connection set-up included."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        t0 = time.perf_counter()
        async with session.get(url, **options) as r:
            await r.read()
            status = r.status
        elapsed = time.perf_counter() - t0
    if status != 200:
        raise SystemExit(f"fresh request to {url}: {status}")
    return elapsed


async def first_requests(
    hosts: list[str], gate: str, gate_ca: ssl.SSLContext, direct: Mode
) -> tuple[list[float], list[float], list[float]]:
    first, second, straight = [], [], []
    for host in hosts:
        options = {"proxy": gate, "ssl": gate_ca}
        first.append(await fresh_request(f"https://{host}{PATH}", options))
        second.append(await fresh_request(f"https://{host}{PATH}", options))
        direct_options = {**direct.options, "server_hostname": host, "headers": {"Host": host}}
        straight.append(await fresh_request(direct.url, direct_options))
    return first, second, straight


def leaf_issue_times(home: Path, count: int) -> list[float]:
    from proxy.forward_mode import ca
    from proxy.forward_mode.certs import LeafCertificates

    leaves = LeafCertificates(ca.create(home / "leaf-ca", ["example.com"], None))
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        leaves.context_for(f"leaf{i}.example.com")
        times.append(time.perf_counter() - t0)
    return times


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


# --- the run ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed, per mode (2000)")
    parser.add_argument("--block", type=int, default=100, help="requests per turn (100)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed, per mode (200)")
    parser.add_argument("--hosts", type=int, default=10, help="new hosts for first requests")
    parser.add_argument("--serve-upstreams", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstreams:
        serve_upstreams(args.serve_upstreams)
        return 0

    from tests.fakes.tls import TestCA

    fresh_hosts = [f"h{i}.example.com" for i in range(1, args.hosts + 1)]
    up_port, tunnel_port, gate_port = free_port(), free_port(), free_port()
    gate = f"http://127.0.0.1:{gate_port}"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dmgate-bench-") as tmp:
        home = Path(tmp)
        test_ca = TestCA(home / "test-ca")
        test_trust = test_ca.client_context()
        sites = [
            (up_port, *test_ca.issue([ROUTE_HOST, *fresh_hosts])),
            (tunnel_port, *test_ca.issue([TUNNEL_HOST])),
        ]
        upstream = start_upstreams(sites, test_trust)
        dmgate = None
        try:
            dmgate = start_dmgate(
                gate_port, up_port, tunnel_port, [ROUTE_HOST, *fresh_hosts], test_ca.ca_path, home
            )
            gate_ca_path = home / "dmgate-ca" / "ca.pem"
            if not gate_ca_path.is_file():
                raise SystemExit(f"dmgate did not create its CA at {gate_ca_path}")
            gate_trust = ssl.create_default_context(cafile=str(gate_ca_path))
            direct = Mode(
                "direct",
                "direct (TLS)",
                f"https://127.0.0.1:{up_port}{PATH}",
                {"ssl": test_trust, "server_hostname": ROUTE_HOST, "headers": {"Host": ROUTE_HOST}},
                ROUTE_HOST,
            )
            modes = [
                direct,
                Mode(
                    "reverse",
                    "reverse mode",
                    f"{gate}/x{PATH}",
                    {},
                    f"127.0.0.1:{up_port}",
                ),
                Mode(
                    "intercepted",
                    "forward, intercepted",
                    f"https://{ROUTE_HOST}{PATH}",
                    {"proxy": gate, "ssl": gate_trust},
                    ROUTE_HOST,
                ),
                Mode(
                    "tunnel",
                    "forward, blind tunnel",
                    f"https://{TUNNEL_HOST}:{tunnel_port}{PATH}",
                    {"proxy": gate, "ssl": test_trust},
                    f"{TUNNEL_HOST}:{tunnel_port}",
                ),
            ]
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                runner.run(keepalive_runs(modes, args.requests, args.block, args.warmup))
                first, second, straight = runner.run(
                    first_requests(fresh_hosts, gate, gate_trust, direct)
                )
            issue = leaf_issue_times(home, max(args.hosts, 20))
        finally:
            if dmgate is not None:
                stop(dmgate)
            stop(upstream)
        trouble = [
            line
            for line in (home / "dmgate.log").read_text(errors="replace").splitlines()
            if '"level": "error"' in line or "Traceback" in line or "Error handling" in line
        ]
    report(modes, FirstRequests(first, second, straight, issue), args)
    print(f"\n(run took {time.monotonic() - started:.0f} s)")
    if trouble or any(p.errors for p in modes):
        if trouble:
            print(f"\ndmgate logged {len(trouble)} error line(s), first: {trouble[0][:300]}")
        return 1
    return 0


def _q(samples: list[float], q: int) -> float:
    """The q-th percentile, in ms."""
    return statistics.quantiles(samples, n=100)[q - 1] * 1000


def report(modes: list[Mode], fr: FirstRequests, args: argparse.Namespace) -> None:
    loop = "asyncio" if event_loop_factory() is asyncio.new_event_loop else "uvloop"
    print(
        f"forward-mode benchmark: loopback, {os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}, aiohttp client on {loop}; GET {PATH} (pass-through), "
        f"{args.requests} timed requests per mode over one keep-alive connection, in "
        f"turns of {args.block} (after {args.warmup} untimed)"
    )
    print()
    by = {p.name: p for p in modes}
    d50, d99 = _q(by["direct"].latencies, 50), _q(by["direct"].latencies, 99)
    r50, r99 = _q(by["reverse"].latencies, 50), _q(by["reverse"].latencies, 99)
    print(
        f"{'mode':24}{'p50 ms':>8}{'p99 ms':>8}{'req/s':>8}{'p50 ratio':>10}{'p99 ratio':>10}"
        f"{'p50 +ms':>9}{'p99 +ms':>9}{'conns':>7}{'errors':>8}"
    )
    print(f"{'':48}{'(to direct)':>20}{'(vs reverse)':>18}")
    for p in modes:
        p50, p99 = _q(p.latencies, 50), _q(p.latencies, 99)
        vs_reverse = "" if p.name == "direct" else f"{p50 - r50:>+9.3f}{p99 - r99:>+9.3f}"
        print(
            f"{p.label:24}{p50:>8.3f}{p99:>8.3f}{len(p.latencies) / p.busy:>8.0f}"
            f"{p50 / d50:>10.2f}{p99 / d99:>10.2f}{vs_reverse:>18}{p.connections:>7}{p.errors:>8}"
        )
    print(
        "(req/s: one request at a time, i.e. 1 / mean latency; conns: connections the client "
        "opened, 1 = keep-alive held throughout)"
    )
    print()

    def line(label: str, samples: list[float]) -> str:
        ms = sorted(s * 1000 for s in samples)
        return (
            f"  {label:58}median {statistics.median(ms):7.2f} ms   "
            f"min {ms[0]:6.2f}   max {ms[-1]:6.2f}"
        )

    extra = [f - s for f, s in zip(fr.first, fr.second, strict=True)]
    print(f"first request for a new intercepted host, fresh connection ({len(fr.first)} hosts):")
    print(line("first time (leaf issued, dmgate's upstream conn. opened)", fr.first))
    print(line("second time (certificate cached)", fr.second))
    print(line("difference first - second", extra))
    print(line("for scale: fresh TLS connection direct to the upstream", fr.direct))
    print(line("leaf certificate alone (LeafCertificates.context_for)", fr.issue))


if __name__ == "__main__":
    sys.exit(main())
