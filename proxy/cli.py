"""`dmgate serve | check-policies FILE | simulate | ca init | ca export`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import errno
import os
import re
import socket
import sys
import textwrap
import typing
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    from proxy.settings import Settings


def _settings() -> Settings | None:
    from pydantic_settings import SettingsError

    from proxy.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        print(_settings_errors(exc), file=sys.stderr)
        return None
    except SettingsError as exc:  # a source that cannot be read at all (e.g. the .env file)
        print(f"dmgate: settings: {exc}", file=sys.stderr)
        return None
    from dotenv import dotenv_values

    env_file = Path(str(Settings.model_config.get("env_file") or ".env"))
    seen = {**(dotenv_values(env_file) if env_file.is_file() else {}), **os.environ}
    misspelt = _misspelt_variables(seen, Settings.model_fields)
    if misspelt:
        print("\n".join(misspelt), file=sys.stderr)
        return None
    return settings


# DMGATE_* variables that are not settings and are fine: Kubernetes service links (for a
# Service named dmgate) and the test suite's own.
_NOT_SETTINGS = re.compile(r"DMGATE_(SERVICE_|PORT_\d|TEST_|SMS_CORPUS$)")


def _misspelt_variables(environ: Mapping[str, str], fields: Iterable[str]) -> list[str]:
    """A DMGATE_* variable that is almost a setting's name is a typo whose setting silently
    keeps its default (a policy file never loaded, a database never used): refuse it."""
    known = {f"DMGATE_{name.upper()}" for name in fields}
    lines = []
    for var in sorted(environ):
        # Settings are read whatever the case (pydantic-settings), so typos are too.
        upper = var.upper()
        if not upper.startswith("DMGATE_") or upper in known or _NOT_SETTINGS.match(upper):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
        if close:
            lines.append(f"dmgate: {var} is not a setting (did you mean {close[0]}?)")
    return lines


def _serve(args: argparse.Namespace) -> int:
    # Settings first: a bad one is refused before the second it takes to import the app.
    settings = _settings()
    if settings is None:
        return 2
    workers = settings.workers if args.workers is None else args.workers
    if workers < 1:
        print("dmgate: --workers must be at least 1", file=sys.stderr)
        return 2
    if workers == 1:
        return _serve_one(settings)
    from proxy import workers as supervisor

    metrics_dir = supervisor.multiprocess_metrics()  # before prometheus_client is imported
    try:
        return _serve_many(settings, workers)
    finally:
        supervisor.remove_metrics(metrics_dir)


def _announce(message: str) -> None:
    # One write (print writes the newline apart): workers log on the same stream.
    sys.stderr.write(f"dmgate: {message}\n")
    sys.stderr.flush()


def _serve_one(
    settings: Settings,
    sock: socket.socket | None = None,
    announce: typing.Callable[[str], None] = _announce,
) -> int:
    """One process serving the port (or, in a worker, the supervisor's socket)."""
    from policies.config import PolicyFileError
    from proxy.app import build_app
    from proxy.forward_mode.listener import run
    from proxy.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    try:
        app = build_app(settings)
    except PolicyFileError as exc:
        print(f"dmgate: policy file {settings.policy_file} refused:\n{exc}", file=sys.stderr)
        return 2
    with _start_failures(settings) as failed:
        run(app, settings.host, settings.port, _event_loop(), announce=announce, sock=sock)
    return failed.code


def _serve_many(settings: Settings, workers: int) -> int:
    """A supervisor and `workers` processes on one port (proxy/workers.py)."""
    from policies.config import PolicyFileError
    from policies.engine import Engine
    from proxy.logs import configure_logging
    from proxy.workers import Supervisor, WorkerStartFailed, prepare_once

    configure_logging(settings.log_format, settings.log_level)
    try:
        Engine.from_file(settings.policy_file)  # refused here, not once per worker
    except PolicyFileError as exc:
        print(f"dmgate: policy file {settings.policy_file} refused:\n{exc}", file=sys.stderr)
        return 2
    with _start_failures(settings) as failed:
        prepare_once(settings)

        def worker(sock: socket.socket, ready: typing.Callable[[str], None]) -> int:
            return _serve_one(settings, sock, ready)

        try:
            Supervisor(settings, workers, worker, _announce).serve()
        except WorkerStartFailed as exc:
            return exc.code  # the worker said why
    return failed.code


class _Outcome:
    code = 0


@contextlib.contextmanager
def _start_failures(settings: Settings) -> typing.Iterator[_Outcome]:
    """What stops dmgate from starting, as one line and exit code 2: the port, or the
    store (never its URL: it may carry a password)."""
    from proxy.store.errors import StoreError

    outcome = _Outcome()
    try:
        yield outcome
    except OSError as exc:
        reason = _bind_failure(exc)
        if reason is None:
            raise
        address = f"[{settings.host}]" if ":" in settings.host else settings.host
        print(
            f"dmgate: cannot listen on {address}:{settings.port}: {reason} "
            "(DMGATE_HOST/DMGATE_PORT)",
            file=sys.stderr,
        )
        outcome.code = 2
    except StoreError as exc:
        print(
            f"dmgate: cannot open the store ({settings.database_url.split(':', 1)[0]}): "
            f"{type(exc).__name__} ({exc.cause}) (DMGATE_DATABASE_URL)",
            file=sys.stderr,
        )
        outcome.code = 2


def _bind_failure(exc: OSError) -> str | None:
    """Why the listening socket could not be made (port taken, address not this host's,
    privileged port, unknown host name), or None for any other OSError, which stays a
    traceback: it is a bug or an outage, not a setting to fix."""
    if isinstance(exc, socket.gaierror):
        return str(exc.strerror or exc).lower()
    bind_errors = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)
    if exc.errno in bind_errors and exc.filename is None:
        return os.strerror(exc.errno).lower()
    return None


def _ca_init(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import hashes

    from proxy.forward_mode import ca

    settings = _settings()
    if settings is None:
        return 2
    directory, passphrase = ca.location(settings)
    try:
        existing = ca.load(directory, passphrase)
    except ca.CAError as exc:
        existing = None
        if not args.force:
            print(f"dmgate: {exc}", file=sys.stderr)
            return 1
    if existing is not None and not args.force:
        print(
            f"dmgate: a CA already exists in {directory} (expires "
            f"{existing.expires_at:%Y-%m-%d}); --force replaces it, and every client must "
            "then trust the new one",
            file=sys.stderr,
        )
        return 1
    try:
        authority = ca.create(directory, sorted(settings.host_routes), passphrase)
    except (ca.CAError, OSError) as exc:
        print(f"dmgate: cannot create the CA: {exc}", file=sys.stderr)
        return 1
    fingerprint = authority.cert.fingerprint(hashes.SHA256()).hex(":").upper()
    print(f"created {authority.cert_path} (key {directory / ca.KEY_FILE}, mode 0600)")
    print(f"  valid until {authority.expires_at:%Y-%m-%d}; may sign only for:")
    for host in authority.permitted:
        print(f"    {host}")
    print(f"  SHA-256 fingerprint {fingerprint}")
    print("Restart running dmgates, then give tools the certificate: `dmgate ca export`.")
    return 0


def _ca_export(args: argparse.Namespace) -> int:
    from proxy.forward_mode import ca

    settings = _settings()
    if settings is None:
        return 2
    directory, passphrase = ca.location(settings)
    try:
        authority = ca.ensure(directory, sorted(settings.host_routes), passphrase)
    except (ca.CAError, OSError) as exc:
        print(f"dmgate: {exc}", file=sys.stderr)
        return 1
    pem = authority.pem()
    if args.bundle:
        # For tools whose CA setting replaces the trust store: still trust everyone else.
        system = ca.system_bundle()
        pem = system + (b"" if system.endswith(b"\n") else b"\n") + b"# dmgate\n" + pem
    if args.out in (None, "-"):
        sys.stdout.buffer.write(pem)
        sys.stdout.flush()
    else:
        Path(args.out).write_bytes(pem)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux, macOS): ~10% more pass-through throughput
    (bench/passthrough.py); the standard loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _settings_errors(exc: ValidationError) -> str:
    """One line per error, naming the variable and, inside a structured one, the path:
    `dmgate: DMGATE_ROUTES: routes.tw: unknown platform 'twiter' (...)`."""
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        msg = err["msg"].removeprefix("Value error, ")
        if not loc:
            lines.append(f"dmgate: settings: {msg}")
            continue
        where = "DMGATE_" + str(loc[0]).upper()
        if len(loc) > 1:
            path = str(loc[0]) + "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:]
            )
            where += f": {path}"
        lines.append(f"dmgate: {where}: {msg}")
    return "\n".join(lines)


def _settings_help() -> str:
    """Every setting with its default and meaning, from the Settings model itself, so the
    list cannot fall behind the code."""
    from proxy.settings import Settings

    lines = ["settings (DMGATE_* environment variables, or a .env file in the working directory):"]
    for name, field in Settings.model_fields.items():
        lines.append(f"  DMGATE_{name.upper()}  (default: {_shown_default(field)})")
        lines.extend(
            textwrap.wrap(
                field.description or "",
                width=96,
                initial_indent=" " * 6,
                subsequent_indent=" " * 6,
                break_on_hyphens=False,
            )
        )
    lines.append("")
    lines.append(
        "Durations accept 90s, 10m, 1h, 3d. Invalid settings: exit 2, naming the variable."
    )
    return "\n".join(lines)


def _shown_default(field: FieldInfo) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "shown_default" in extra:
        return str(extra["shown_default"])
    value = field.get_default(call_default_factory=True)
    if _is_secret(field.annotation):
        # Never printed, whatever it is.
        return "(secret)" if value else "unset"
    if value is None or value == [] or value == {}:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, timedelta):
        return _duration_text(value)
    return str(value)


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in typing.get_args(annotation))


def _duration_text(value: timedelta) -> str:
    """As people write them: 60s, 5m, 72h (the smallest unit giving a number under 100)."""
    seconds = int(value.total_seconds())
    fitting = [
        (seconds // size, unit)
        for unit, size in (("s", 1), ("m", 60), ("h", 3600), ("d", 86400))
        if seconds % size == 0
    ]
    number, unit = next((f for f in fitting if f[0] < 100), fitting[-1])
    return f"{number}{unit}"


def _check_policies(args: argparse.Namespace) -> int:
    from policies.config import PolicyFileError
    from policies.engine import Engine

    try:
        engine = Engine.from_file(Path(args.file))
    except PolicyFileError as exc:
        print(f"{args.file}: invalid\n{exc}", file=sys.stderr)
        return 1
    print(f"{args.file}: ok (version {engine.version})")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from proxy.backtest.simulate import Options, run

    return run(
        Options(
            policies=Path(args.policies),
            inputs=[Path(p) for p in args.inputs],
            account=args.account,
            report=Path(args.report) if args.report else None,
            compare=Path(args.compare) if args.compare else None,
            json=args.json,
            skip_bad=args.skip_bad,
            jobs=args.jobs,
        )
    )


def _default_policy_file() -> str:
    from policies.config import DEFAULT_POLICY_FILE

    return os.environ.get("DMGATE_POLICY_FILE") or str(DEFAULT_POLICY_FILE)


def _add_simulate(sub: Any) -> None:
    """`dmgate simulate`'s arguments (proxy/backtest/)."""
    simulate = sub.add_parser(
        "simulate",
        help="replay exported DM history against policy files: what would they have done?",
        description="Replay exported DMs (X archive direct-messages.js / "
        "direct-messages-group.js, LinkedIn messages.csv, or JSON Lines / CSV with time, "
        "platform, account, recipient, text, optional kind: dm | received | follow) through "
        "the policy engine in time order, and report what would have been allowed, held "
        "and blocked. Exit 0 done, 2 unreadable input (file and line named).",
    )
    simulate.add_argument("inputs", nargs="+", metavar="INPUT", help="exported DM history")
    simulate.add_argument(
        "--policies",
        default=_default_policy_file(),
        metavar="FILE",
        help="policy file (default: DMGATE_POLICY_FILE, else the shipped policies/default.yaml)",
    )
    simulate.add_argument(
        "--account", metavar="ID", help="the sending account (default: the archive's owner)"
    )
    simulate.add_argument("--report", metavar="OUT.html", help="write an HTML report")
    simulate.add_argument(
        "--compare", metavar="FILE2", help="a second policy file: show what changes"
    )
    simulate.add_argument("--json", action="store_true", help="print one JSON object")
    simulate.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable records (counted) instead of stopping at the first",
    )
    simulate.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="replay processes, each judging a share of the sending accounts (default: one "
        "per core for large inputs with several accounts)",
    )
    simulate.set_defaults(func=_simulate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmgate",
        description="An HTTP proxy that holds or blocks automated direct messages for review.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the proxy (settings from DMGATE_* variables; `serve --help` lists them)",
        description="Run the proxy. Settings come from the environment.",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes serving the one port (default: DMGATE_WORKERS, 1)",
    )
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check-policies", help="validate a policy file and exit")
    check.add_argument("file", help="the policy file (YAML)")
    check.set_defaults(func=_check_policies)
    _add_simulate(sub)
    ca_cmd = sub.add_parser("ca", help="the CA for forward mode (HTTPS_PROXY)")
    ca_sub = ca_cmd.add_subparsers(dest="ca_command", required=True, metavar="CA_COMMAND")
    init = ca_sub.add_parser("init", help="create the CA (limited to the routes' hosts)")
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    init.set_defaults(func=_ca_init)
    export = ca_sub.add_parser("export", help="print the CA certificate (PEM) for clients")
    export.add_argument(
        "--bundle",
        action="store_true",
        help="the system's CAs plus dmgate's, for REQUESTS_CA_BUNDLE / SSL_CERT_FILE / "
        "curl --cacert (they replace the trust store)",
    )
    export.add_argument("-o", "--out", help="write to this file instead of stdout")
    export.set_defaults(func=_ca_export)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
