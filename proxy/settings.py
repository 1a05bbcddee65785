"""Every setting dmgate reads, from `DMGATE_*` environment variables (and an optional `.env`)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from yarl import URL

from policies.config import DEFAULT_POLICY_FILE, parse_duration


class Route(BaseModel, extra="forbid"):
    """One upstream: `/{name}/...` (reverse mode) and requests to any of `hosts` (forward
    mode) are forwarded to `upstream` and judged by `platform`."""

    upstream: str
    platform: str
    # Host names this route owns in forward mode: a CONNECT to one is intercepted, and its
    # requests go to `upstream` with that name as `Host` and TLS server name.
    hosts: list[str] = Field(default_factory=list)
    # PEM file of CAs trusted for this upstream instead of the system store.
    ca_bundle: Path | None = None

    @field_validator("hosts")
    @classmethod
    def _dns_names(cls, v: list[str]) -> list[str]:
        return [dns_name(h) for h in v]

    @field_validator("ca_bundle")
    @classmethod
    def _readable(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"ca_bundle {str(v)!r} is not a readable file")
        return v

    @field_validator("upstream")
    @classmethod
    def _absolute_http_url(cls, v: str) -> str:
        url = URL(v)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"upstream must be an absolute http(s) URL, got {v!r}")
        if url.query_string or url.fragment:
            raise ValueError(f"upstream must not carry a query or fragment: {v!r}")
        return v.rstrip("/")


# Route name -> upstream, platform and the host names it owns in forward mode.
DEFAULT_ROUTES: dict[str, dict[str, Any]] = {
    "x": {"upstream": "https://api.x.com", "platform": "x", "hosts": ["api.x.com"]},
    "twitter": {
        "upstream": "https://api.twitter.com",
        "platform": "x",
        "hosts": ["api.twitter.com"],
    },
    "linkedin": {
        "upstream": "https://api.linkedin.com",
        "platform": "linkedin",
        "hosts": ["api.linkedin.com"],
    },
    "linkedin-web": {
        "upstream": "https://www.linkedin.com",
        "platform": "linkedin",
        "hosts": ["www.linkedin.com"],
    },
    "meta": {
        "upstream": "https://graph.facebook.com",
        "platform": "meta",
        "hosts": ["graph.facebook.com"],
    },
    "instagram": {
        "upstream": "https://graph.instagram.com",
        "platform": "meta",
        "hosts": ["graph.instagram.com"],
    },
    "bluesky": {"upstream": "https://bsky.social", "platform": "bluesky", "hosts": ["bsky.social"]},
}

# First path segments dmgate serves itself.
RESERVED_PATHS = frozenset({"api", "metrics", "healthz", "readyz", "webhooks"})
_ROUTE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")
_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def dns_name(value: str) -> str:
    """A host name as dmgate compares them (lower case, no trailing dot); IP literals and
    anything else that is not a DNS name are refused."""
    name = value.strip().lower().removesuffix(".")
    labels = name.split(".")
    if (
        len(name) > 253
        or not all(_DNS_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()  # 127.0.0.1 and friends
    ):
        raise ValueError(f"{value!r} is not a DNS host name (IP addresses are not accepted)")
    return name


def split_host_port(value: str, default_port: int | None = None) -> tuple[str, int]:
    """`host:port`, or `host` when there is a default port. The port is checked (1-65535),
    the host is left to the caller. Raises ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep and default_port is not None:
        host, port = value, str(default_port)
    elif not sep:
        raise ValueError(f"{value[:100]!r} has no port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value[:100]!r}: the port must be 1-65535")
    return host, int(port)


def _tunnel_entry(value: str) -> tuple[str, int]:
    """`host` or `host:port` (443 unless given); `*.example.com` covers subdomains."""
    try:
        host, port = split_host_port(value.strip(), default_port=443)
    except ValueError:
        raise ValueError(f"tunnel host {value!r}: the port must be 1-65535") from None
    wildcard = host.startswith("*.")
    name = dns_name(host[2:] if wildcard else host)
    return ("*." + name if wildcard else name), port


def _duration(v: Any) -> timedelta:
    if isinstance(v, timedelta):
        return v
    return parse_duration(str(v))


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DMGATE_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    database_url: str = "sqlite:///dmgate.db"
    policy_file: Path = DEFAULT_POLICY_FILE
    routes: Annotated[dict[str, Route], NoDecode] = Field(
        default_factory=lambda: {k: Route(**v) for k, v in DEFAULT_ROUTES.items()}
    )
    # "name:token" pairs (a bare token gets a derived name); secrets never logged.
    review_tokens: Annotated[list[tuple[str, SecretStr]], NoDecode] = Field(default_factory=list)
    review_webhook_url: str | None = None
    review_webhook_secret: SecretStr | None = None
    hold_ttl: Duration = timedelta(hours=72)
    secret_key: SecretStr | None = None
    log_format: Literal["console", "json"] | None = None
    log_level: str = "info"
    hold_status: Literal["platform", "202"] = "platform"
    # How clients reach dmgate (e.g. https://dmgate.example.com behind a TLS load
    # balancer), for answers that must point clients back at dmgate; default: the
    # address each request came in on.
    public_url: str | None = None
    # Webhook secrets per platform (X: the app's consumer secret), JSON object.
    webhook_secrets: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    # Optional relay: webhook payloads are passed on to the tool's own endpoint.
    webhook_relay: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    max_dm_body: int = Field(1024 * 1024, ge=1024)
    upstream_connect_timeout: Duration = timedelta(seconds=10)
    upstream_read_timeout: Duration = timedelta(seconds=60)
    upstream_pool_size: int = Field(100, ge=1)
    policy_reload_interval: Duration = timedelta(seconds=2)
    expiry_interval: Duration = timedelta(seconds=30)
    # PostgreSQL connections per replica (SQLite uses a small fixed pool).
    database_pool_size: int = Field(10, ge=1, le=200)
    # Facts older than the longest policy window plus this margin are pruned.
    retention_margin: Duration = timedelta(hours=24)
    retention_interval: Duration = timedelta(minutes=5)
    # Forward mode. The CA that signs intercepted hosts' certificates lives here (default:
    # `dmgate-ca/` beside the database); its key may be encrypted with a passphrase.
    ca_dir: Path | None = None
    ca_passphrase: SecretStr | None = None
    # CONNECT targets tunnelled blindly (never intercepted): `host`, `host:port`,
    # `*.example.com`; comma-separated or a JSON list. Everything else not owned by a route
    # is refused.
    tunnel_hosts: Annotated[list[tuple[str, int]], NoDecode] = Field(default_factory=list)
    # Blind tunnels to loopback, private and link-local addresses are refused unless this
    # is set (a tunnel must not reach into the network dmgate runs in).
    tunnel_private: bool = False
    # "user:password" pairs, comma-separated: when set, forward-mode requests need proxy
    # authentication (Basic), else 407.
    proxy_auth: Annotated[list[tuple[str, SecretStr]], NoDecode] = Field(default_factory=list)
    # How long a client may take to send its first request head / finish a TLS handshake.
    client_handshake_timeout: Duration = timedelta(seconds=10)
    keepalive_timeout: Duration = timedelta(seconds=75)

    @field_validator(
        "secret_key",
        "review_webhook_url",
        "review_webhook_secret",
        "log_format",
        "public_url",
        "ca_dir",
        "ca_passphrase",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        # Deployment templates often set a variable to "" to mean "not set".
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return v

    @field_validator("routes", mode="before")
    @classmethod
    def _parse_routes(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError as exc:
                raise ValueError(f"DMGATE_ROUTES is not valid JSON: {exc}") from None
        if not isinstance(v, dict):
            raise ValueError("DMGATE_ROUTES must be a JSON object: route name -> upstream")
        routes: dict[str, Any] = {}
        for name, spec in v.items():
            if not name or not set(name) <= _ROUTE_NAME_CHARS or name in RESERVED_PATHS:
                raise ValueError(
                    f"route name {name!r} must be lowercase letters, digits, - or _ "
                    f"and not one of dmgate's own paths ({', '.join(sorted(RESERVED_PATHS))})"
                )
            default = DEFAULT_ROUTES.get(name, {})
            if isinstance(spec, str):
                # A bare URL keeps the platform of the default route of that name.
                spec = {"upstream": spec, "platform": default.get("platform", "passthrough")}
            if isinstance(spec, dict) and "hosts" not in spec:
                spec = {**spec, "hosts": default.get("hosts") or _own_host(spec.get("upstream"))}
            routes[name] = spec
        return routes

    @field_validator("routes")
    @classmethod
    def _hosts_owned_once(cls, v: dict[str, Route]) -> dict[str, Route]:
        owner: dict[str, str] = {}
        for name, route in v.items():
            for host in route.hosts:
                if host in owner:
                    raise ValueError(
                        f"host {host!r} is claimed by both route {owner[host]!r} and {name!r}"
                    )
                owner[host] = name
        return v

    @field_validator("tunnel_hosts", mode="before")
    @classmethod
    def _parse_tunnel_hosts(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = json.loads(v) if v.strip().startswith("[") else v.split(",")
        return [_tunnel_entry(e) if isinstance(e, str) else e for e in v if str(e).strip()]

    @field_validator("proxy_auth", mode="before")
    @classmethod
    def _parse_proxy_auth(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        pairs = []
        for entry in (e.strip() for e in v.split(",")):
            user, sep, password = entry.partition(":")
            if not entry:
                continue
            if not (sep and user and password):
                raise ValueError("each entry must be user:password")
            pairs.append((user, SecretStr(password)))
        return pairs

    @cached_property
    def host_routes(self) -> dict[str, tuple[str, Route]]:
        """Forward mode: host name -> (route name, route) owning it."""
        return {h: (n, r) for n, r in self.routes.items() for h in r.hosts}

    @field_validator("review_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [t.strip() for t in v.split(",") if t.strip()]
        return [_named_token(t) if isinstance(t, str) else t for t in v]

    @field_validator("webhook_secrets", "webhook_relay", mode="before")
    @classmethod
    def _parse_json_object(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                v = json.loads(v) if v.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON: {exc}") from None
        return v


def _own_host(upstream: Any) -> list[str]:
    """A route without `hosts` owns its upstream's host name (when that is a DNS name)."""
    try:
        return [dns_name(URL(str(upstream)).host or "")]
    except ValueError:
        return []


def _named_token(entry: str) -> tuple[str, SecretStr]:
    import hashlib

    name, sep, token = entry.partition(":")
    if sep and name and token and all(c.isalnum() or c in "-_.@" for c in name):
        return name, SecretStr(token)
    # A bare token is named by a short digest so decisions can say who decided.
    return "token-" + hashlib.sha256(entry.encode()).hexdigest()[:8], SecretStr(entry)
