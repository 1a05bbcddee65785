"""dmgate's CA and the leaf certificates it issues, checked by OpenSSL itself."""

from __future__ import annotations

import asyncio
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.forward_mode import ca
from proxy.forward_mode.certs import InterceptContext, LeafCertificates

HOSTS = ["api.x.com", "api.twitter.com"]


async def handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> str:
    """A real TLS handshake on loopback; returns the negotiated ALPN protocol."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server)
    port = srv.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname=name
        )
        alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        writer.write(b"x")
        writer.close()
        return alpn
    finally:
        srv.close()


def client_trusting(authority: ca.CertificateAuthority) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(authority.cert_path))
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def test_ca_files_are_private_and_the_key_can_be_encrypted(tmp_path):
    authority = ca.create(tmp_path / "ca", HOSTS, b"a passphrase")
    key = tmp_path / "ca" / ca.KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    assert ca.load(tmp_path / "ca", b"a passphrase").cert == authority.cert  # type: ignore[union-attr]
    with pytest.raises(ca.CAError, match="DMGATE_CA_PASSPHRASE"):
        ca.load(tmp_path / "ca", None)
    with pytest.raises(ca.CAError):
        ca.load(tmp_path / "ca", b"wrong")


def test_ensure_creates_once_and_then_loads(tmp_path):
    first = ca.ensure(tmp_path / "ca", HOSTS, None)
    again = ca.ensure(tmp_path / "ca", ["other.example"], None)
    assert again.cert == first.cert
    assert set(first.permitted) == set(HOSTS)
    assert first.covers("api.x.com") and not first.covers("example.com")
    assert not first.covers("x.com")


def test_a_leaf_for_a_routed_host_verifies_with_alpn_http_1_1(tmp_path):
    authority = ca.create(tmp_path / "ca", HOSTS, None)
    leaves = LeafCertificates(authority)
    server = leaves.context_for("api.x.com")
    assert isinstance(server, InterceptContext) and server.host == "api.x.com"
    assert leaves.context_for("api.x.com") is server  # cached
    alpn = asyncio.run(handshake(server, client_trusting(authority), "api.x.com"))
    assert alpn == "http/1.1"


def test_sni_for_another_host_is_refused(tmp_path):
    authority = ca.create(tmp_path / "ca", HOSTS, None)
    server = LeafCertificates(authority).context_for("api.x.com")
    lax = client_trusting(authority)
    lax.check_hostname = False  # so that only the server's SNI check can fail this
    assert asyncio.run(handshake(server, lax, "api.x.com")) == "http/1.1"
    # The server aborts with an alert; the client sees the alert or the reset after it.
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        asyncio.run(handshake(server, lax, "api.twitter.com"))


def test_no_leaf_for_hosts_outside_the_name_constraints(tmp_path):
    leaves = LeafCertificates(ca.create(tmp_path / "ca", HOSTS, None))
    with pytest.raises(ca.CAError, match="ca init --force"):
        leaves.context_for("www.linkedin.com")


def test_openssl_enforces_the_name_constraints(tmp_path):
    """Even a certificate signed with the CA's own key for another host is rejected by
    clients: a leaked CA key cannot vouch for the rest of the web."""
    authority = ca.create(tmp_path / "ca", HOSTS, None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    rogue = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank.example")]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bank.example")]), False)
        .sign(authority.key, hashes.SHA256())
    )
    chain = tmp_path / "rogue.pem"
    chain.write_bytes(
        rogue.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(chain)
    with pytest.raises(ssl.SSLCertVerificationError, match=r"constraint|permitted"):
        asyncio.run(handshake(server, client_trusting(authority), "bank.example"))


def test_a_missing_half_of_the_ca_is_a_clear_error(tmp_path):
    ca.create(tmp_path / "ca", HOSTS, None)
    (tmp_path / "ca" / ca.KEY_FILE).unlink()
    with pytest.raises(ca.CAError, match="ca init --force"):
        ca.load(tmp_path / "ca", None)


def test_no_ca_without_hosts(tmp_path):
    with pytest.raises(ca.CAError, match="no route owns a host"):
        ca.create(tmp_path / "ca", [], None)


def test_system_bundle_is_pem(tmp_path: Path):
    assert ca.system_bundle().count(b"-----BEGIN CERTIFICATE-----") > 10
