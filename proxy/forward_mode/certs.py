"""Leaf certificates for intercepted hosts and the TLS server contexts that present them.

One context per host, made on first use and cached until its certificate nears expiry.
EC P-256 keeps issuing cheap (about a millisecond, measured in bench/forward_mode.py), so
it runs on the event loop. Leaf keys live in memory only: they reach OpenSSL through an
anonymous in-memory file (Linux) or, elsewhere, encrypted with a one-time password.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proxy.forward_mode.ca import CAError, CertificateAuthority, key_usage

LEAF_VALIDITY = timedelta(days=30)
RENEW_BEFORE = timedelta(days=1)


class InterceptContext(ssl.SSLContext):
    """A TLS server context for one intercepted host. A request that arrives over a
    connection using it belongs to `host` (how the gateway tells forward mode apart)."""

    host: str


def _check_sni(
    sslobj: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
) -> int | None:
    # The client must ask for the host it named in CONNECT: anything else is a client
    # confused about where it is, or one trying to reach a host through another's tunnel.
    if server_name is None:
        return None
    if server_name.lower().rstrip(".") != getattr(context, "host", None):
        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
    return None


class LeafCertificates:
    def __init__(self, ca: CertificateAuthority) -> None:
        self.ca = ca
        self._contexts: dict[str, tuple[InterceptContext, datetime]] = {}

    def context_for(self, host: str) -> InterceptContext:
        """The server context for `host`. Raises CAError if the CA may not sign for it."""
        now = datetime.now(UTC)
        hit = self._contexts.get(host)
        if hit is not None and hit[1] - RENEW_BEFORE > now:
            return hit[0]
        if not self.ca.covers(host):
            raise CAError(
                f"dmgate's CA is not allowed to sign for {host} (its name constraints are "
                f"{', '.join(self.ca.permitted)}): run `dmgate ca init --force` after "
                "changing the routes' hosts, and trust the new CA"
            )
        not_after = min(now + LEAF_VALIDITY, self.ca.expires_at)
        if not_after - RENEW_BEFORE <= now:
            raise CAError(
                "dmgate's CA has expired or expires within a day: run `dmgate ca init --force`"
            )
        ctx = self._issue(host, now, not_after)
        self._contexts[host] = (ctx, not_after)
        return ctx

    def _issue(self, host: str, now: datetime, not_after: datetime) -> InterceptContext:
        key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = self.ca.cert
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.key.public_key()),
                critical=False,
            )
            .sign(self.ca.key, hashes.SHA256())
        )
        ctx = InterceptContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.host = host
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["http/1.1"])  # clients offering h2 fall back to HTTP/1.1
        ctx.keylog_filename = None  # type: ignore[assignment]  # never write session keys out
        ctx.sni_callback = _check_sni
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.ca.pem()
        _load_chain(ctx, chain, key)
        return ctx


def _load_chain(ctx: ssl.SSLContext, chain: bytes, key: ec.EllipticCurvePrivateKey) -> None:
    """`load_cert_chain` only reads files: give it one that never touches a disk, or one
    whose key is encrypted."""
    if hasattr(os, "memfd_create"):
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.memfd_create("dmgate-leaf", os.MFD_CLOEXEC)
        try:
            os.write(fd, chain + pem)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    password = secrets.token_bytes(32)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    with tempfile.TemporaryDirectory(prefix="dmgate-leaf-") as tmp:
        path = os.path.join(tmp, "leaf.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(chain + pem)
        ctx.load_cert_chain(path, password=password)


__all__ = ["CAError", "InterceptContext", "LeafCertificates"]
