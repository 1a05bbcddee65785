"""`dmgate serve --workers N`: one port, N processes, every core used.

A pre-fork supervisor, as gunicorn and nginx do it, rather than gunicorn itself: dmgate's
listener must see each connection's first bytes (a forward-mode `CONNECT` is answered
before aiohttp sees anything, `proxy/forward_mode/listener.py`), which gunicorn's aiohttp
worker does not allow. The supervisor:

1. does once what must exist exactly once before any worker starts — the key file, the
   forward-mode CA, the schema (migrations), a generated review token (printed once);
2. binds the listening socket and forks the workers, which accept on it (the kernel
   spreads connections among them);
3. restarts a worker that dies, forwards SIGHUP (reload the policy file) to all of them,
   and on SIGTERM/SIGINT stops them all and waits while they drain.

Metrics use prometheus-client's multiprocess mode: any worker's `/metrics` shows the sum
of every worker's counters and histograms, and the gauges that come from the store (holds
pending, oldest pending hold) show the most recent value, not a sum.

What stays per worker, as it is per replica: the memory of sends whose answer the tool
did not receive (`proxy/unanswered.py`: a retry that reaches another worker is judged
again, and the platform could get the DM twice), leaf-certificate caches, single-flight
sender lookups. Background jobs (expiry, retention, the notification outbox) already run
on every replica with leases and idempotent writes, so they run in every worker too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable

import structlog

from proxy.settings import Settings

log = structlog.get_logger("dmgate.workers")

# A worker that dies sooner than this after starting is restarted only after a pause, so
# a worker that cannot run does not spin the machine.
_QUICK_DEATH = 1.0
_RESTART_PAUSE = 1.0
METRICS_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"


class WorkerStartFailed(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"a worker exited with {code} while starting")
        self.code = code


def bind(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts on (OSError if it cannot be had)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    sock = socket.socket(infos[0][0], socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(infos[0][4])
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        workers: int,
        run_worker: Callable[[socket.socket, Callable[[str], None]], int],
        announce: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._n = workers
        self._run_worker = run_worker
        self._announce = announce
        self._children: dict[int, float] = {}  # pid -> start time (monotonic)
        self._stopping = False

    def serve(self) -> int:
        """Run until SIGTERM/SIGINT. Raises OSError if the port cannot be had and
        WorkerStartFailed if a worker dies while starting (its exit code says why)."""
        sock = bind(self._settings.host, self._settings.port)
        ready_r, ready_w = os.pipe()
        self._ready_w = ready_w
        self._sock = sock
        try:
            self._install_signals()
            for _ in range(self._n):
                self._fork()
            self._wait_ready(ready_r)
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            self._announce(
                f"======== Running on http://{shown}:{port} ({self._n} workers) ========"
            )
            self._supervise()
        finally:
            self._stop_all()
            sock.close()
            os.close(ready_r)
            os.close(ready_w)
        return 0

    def _fork(self) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                code = self._run_worker(self._sock, self._worker_ready)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self._children[pid] = time.monotonic()
        log.info("worker_started", pid=pid)

    def _worker_ready(self, _message: str) -> None:
        with contextlib.suppress(OSError):  # nobody waits any more: fine
            os.write(self._ready_w, b".")

    def _wait_ready(self, ready_r: int) -> None:
        ready = 0
        while ready < self._n:
            readable, _, _ = select.select([ready_r], [], [], 0.1)
            if readable:
                ready += len(os.read(ready_r, self._n))
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid:
                self._children.pop(pid, None)
                raise WorkerStartFailed(os.waitstatus_to_exitcode(status))

    def _supervise(self) -> None:
        while self._children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return
            started = self._children.pop(pid, None)
            if self._stopping or started is None:
                continue
            _forget_metrics_of(pid)
            code = os.waitstatus_to_exitcode(status)
            log.error("worker_exited", pid=pid, exit_code=code, hint="restarting it")
            if time.monotonic() - started < _QUICK_DEATH:
                time.sleep(_RESTART_PAUSE)
            if not self._stopping:
                self._fork()

    def _install_signals(self) -> None:
        def stop(_sig: int, _frame: object) -> None:
            self._stopping = True
            self._signal_all(signal.SIGTERM)

        def reload(_sig: int, _frame: object) -> None:
            self._signal_all(signal.SIGHUP)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _signal_all(self, sig: int) -> None:
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _stop_all(self) -> None:
        """SIGTERM every worker and wait while they drain."""
        self._stopping = True
        self._signal_all(signal.SIGTERM)
        while self._children:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self._children.pop(pid, None)


def multiprocess_metrics() -> str:
    """A private directory for prometheus-client's multiprocess mode, named in the
    environment before anything imports prometheus_client (it reads it at import)."""
    assert "prometheus_client" not in sys.modules, "metrics imported before workers set up"
    directory = tempfile.mkdtemp(prefix="dmgate-metrics-")
    os.environ[METRICS_DIR_VAR] = directory
    return directory


def remove_metrics(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _forget_metrics_of(pid: int) -> None:
    """A dead worker's live gauges must not linger (its counters stay: totals never go
    backwards)."""
    if os.environ.get(METRICS_DIR_VAR):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


async def prepare(settings: Settings) -> None:
    """What must exist once before the workers start: the key file, the forward-mode CA,
    the schema, and the review tokens (a generated one is printed once, here)."""
    from proxy.app import _forward_mode_certificates, _master_key
    from proxy.clock import Clock
    from proxy.reviewers import Reviewers
    from proxy.store import Store

    _master_key(settings)
    _forward_mode_certificates(settings)
    store = await Store.open(settings.database_url, pool_size=1)
    try:
        await Reviewers(settings.review_tokens, store.tokens, Clock()).load()
    finally:
        await store.close()


def prepare_once(settings: Settings) -> None:
    asyncio.run(prepare(settings))
