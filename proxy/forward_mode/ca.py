"""dmgate's certificate authority: generated per installation, never shipped.

The CA signs the leaf certificates dmgate presents for intercepted hosts. Its X.509 name
constraints limit it to the host names the routes own, so a leaked CA key cannot vouch
for any other site (OpenSSL, Go, Node and browsers enforce the constraint). The key is EC
P-256, written 0600 in a 0700 directory, encrypted when a passphrase is configured.
"""

from __future__ import annotations

import fcntl
import os
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.settings import Settings
from proxy.store.database import sqlite_path

CERT_FILE = "ca.pem"
KEY_FILE = "ca-key.pem"
CA_VALIDITY = timedelta(days=365)


class CAError(Exception):
    """The CA cannot be created or loaded; the message says what to do."""


@dataclass(frozen=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    directory: Path

    @property
    def cert_path(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def permitted(self) -> tuple[str, ...]:
        """The DNS names (and their subdomains) this CA may sign for; () = unconstrained."""
        try:
            ext = self.cert.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            return ()
        return tuple(n.value for n in ext.permitted_subtrees or () if isinstance(n, x509.DNSName))

    def covers(self, host: str) -> bool:
        permitted = self.permitted
        return not permitted or any(host == p or host.endswith("." + p) for p in permitted)

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def expires_at(self) -> datetime:
        return self.cert.not_valid_after_utc


def key_usage(ca: bool) -> x509.KeyUsage:
    """A CA signs certificates; an (EC) TLS server key signs handshakes."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def location(settings: Settings) -> tuple[Path, bytes | None]:
    """Where the CA lives (DMGATE_CA_DIR, else `dmgate-ca/` beside the SQLite database or
    in the working directory) and the passphrase of its key."""
    directory = settings.ca_dir
    if directory is None:
        db = sqlite_path(settings.database_url)
        directory = (db.parent if db else Path.cwd()) / "dmgate-ca"
    secret = settings.ca_passphrase
    return directory, secret.get_secret_value().encode() if secret else None


def create(directory: Path, hosts: list[str], passphrase: bytes | None) -> CertificateAuthority:
    """Generate a new CA for `hosts`, replacing any CA in `directory`."""
    if not hosts:
        raise CAError("no route owns a host name: nothing for a CA to sign (see DMGATE_ROUTES)")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dmgate"),
            # The machine's name tells operators whose CA they are trusting.
            x509.NameAttribute(NameOID.COMMON_NAME, f"dmgate CA ({socket.gethostname()[:40]})"),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))  # tolerate clients' clock skew
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(ca=True), critical=True)
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(h) for h in sorted(set(hosts))],
                excluded_subtrees=None,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    _write_private(directory / KEY_FILE, key_pem)
    _write_private(directory / CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return CertificateAuthority(cert, key, directory)


def load(directory: Path, passphrase: bytes | None) -> CertificateAuthority | None:
    """The CA in `directory`, or None if there is none yet."""
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    if not cert_path.exists() and not key_path.exists():
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), passphrase or None)
    except FileNotFoundError as exc:
        raise CAError(f"{exc.filename} is missing: run `dmgate ca init --force`") from None
    except TypeError:
        raise CAError(
            f"{key_path} is encrypted: set DMGATE_CA_PASSPHRASE"
            if not passphrase
            else f"{key_path} is not encrypted but DMGATE_CA_PASSPHRASE is set"
        ) from None
    except ValueError as exc:
        # Wrong passphrase or a damaged file; the message never includes key material.
        raise CAError(f"cannot read the CA in {directory}: {str(exc).splitlines()[0]}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CAError(f"{key_path} is not an EC key")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise CAError(f"{key_path} does not belong to {cert_path}")
    return CertificateAuthority(cert, key, directory)


def ensure(directory: Path, hosts: list[str], passphrase: bytes | None) -> CertificateAuthority:
    """The CA in `directory`, created on first start. Replicas starting together on a
    shared directory create one CA between them (an exclusive lock on the directory)."""
    existing = load(directory, passphrase)
    if existing is not None:
        return existing
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return load(directory, passphrase) or create(directory, hosts, passphrase)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def system_bundle() -> bytes:
    """The system's trusted CAs as PEM, for a combined bundle (tools whose CA variable
    replaces the trust store: REQUESTS_CA_BUNDLE, SSL_CERT_FILE, curl --cacert)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    # No single file: what the default context loaded, converted from DER.
    ders = ssl.create_default_context().get_ca_certs(binary_form=True)
    return b"".join(ssl.DER_cert_to_PEM_cert(d).encode() for d in ders)


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write atomically with `mode` from the start (no window in which it is readable)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
