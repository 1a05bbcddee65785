"""Keys: encrypting stored request credentials and hashing tokens.

One master secret (`DMGATE_SECRET_KEY`, or a key file generated beside the database with
mode 0600) derives two keys: a Fernet key that seals held requests' headers, and an HMAC key
that turns bearer tokens and cookies into stable, non-reversible identifiers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


@dataclass(frozen=True)
class StoredRequest:
    """A held request as it will be sent on approval."""

    method: str
    url: str  # encoded, as sent upstream
    headers: list[tuple[str, str]]
    body: bytes
    host: str | None = None  # forward mode: the host the tool called (Host, TLS name)


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dmgate", info=purpose).derive(master)


def load_or_create_key_file(path: Path) -> bytes:
    """Read the master secret from `path`, creating it (0600) on first start."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32).encode()
    # O_EXCL: if two processes race on first start, one creates the file, both read it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


class Keyring:
    """Seal / open stored secrets and hash credentials."""

    def __init__(self, master: bytes) -> None:
        if len(master) < 16:
            raise ValueError("DMGATE_SECRET_KEY must be at least 16 characters")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(master, b"sealed-requests")))
        self._hmac_key = _derive(master, b"credential-hash")

    def seal_request(self, request: StoredRequest) -> bytes:
        """The whole request: credentials can sit in headers, the query or the body."""
        return self._fernet.encrypt(
            json.dumps(
                {
                    "method": request.method,
                    "url": request.url,
                    "headers": request.headers,
                    "body": base64.b64encode(request.body).decode(),
                    "host": request.host,
                }
            ).encode()
        )

    def open_request(self, sealed: bytes) -> StoredRequest:
        doc = json.loads(self._fernet.decrypt(sealed))
        return StoredRequest(
            doc["method"],
            doc["url"],
            [(k, v) for k, v in doc["headers"]],
            base64.b64decode(doc["body"]),
            doc.get("host"),  # holds sealed before forward mode have none
        )

    def credential_hash(self, credential: str) -> str:
        """A keyed hash: stable across restarts and replicas, useless without the key."""
        return hmac.new(self._hmac_key, credential.encode(), hashlib.sha256).hexdigest()
