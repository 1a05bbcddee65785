"""`dmgate serve | check-policies FILE | ca init | ca export`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

if TYPE_CHECKING:
    from proxy.settings import Settings


def _settings() -> Settings | None:
    from proxy.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        print(f"dmgate: invalid settings:\n{_settings_errors(exc)}", file=sys.stderr)
        return None


def _serve(_args: argparse.Namespace) -> int:
    from policies.config import PolicyFileError
    from proxy.app import build_app
    from proxy.forward_mode.listener import run
    from proxy.logs import configure_logging

    settings = _settings()
    if settings is None:
        return 2
    configure_logging(settings.log_format, settings.log_level)
    try:
        app = build_app(settings)
    except PolicyFileError as exc:
        print(f"dmgate: policy file {settings.policy_file} refused:\n{exc}", file=sys.stderr)
        return 2
    run(
        app,
        settings.host,
        settings.port,
        _event_loop(),
        announce=lambda msg: print(f"dmgate: {msg}", file=sys.stderr, flush=True),
    )
    return 0


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
    lines = []
    for err in exc.errors():
        key = "DMGATE_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
        lines.append(f"  {key}: {err['msg']}")
    return "\n".join(lines)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmgate",
        description="An HTTP proxy that holds or blocks automated direct messages for review.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the proxy (settings from DMGATE_* variables)")
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check-policies", help="validate a policy file and exit")
    check.add_argument("file", help="the policy file (YAML)")
    check.set_defaults(func=_check_policies)
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
