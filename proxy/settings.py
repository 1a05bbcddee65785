"""Every setting dmgate reads, from `DMGATE_*` environment variables (and an optional `.env`).

Configuration fails closed: anything dmgate cannot read exactly as written refuses to
start, with a message naming the variable (and, inside `DMGATE_ROUTES`, the route and key).
In particular every route names the platform that judges its DMs: an adapter from
`proxy.platforms.PLATFORMS`, or the explicit `"none"` for a pass-through-only route that is
never judged. `DMGATE_ROUTES` replaces the default routes, it does not merge with them.
`dmgate serve --help` lists every setting (built from the field descriptions below).
"""

from __future__ import annotations

import difflib
import json
import re
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from yarl import URL

from policies.config import DEFAULT_POLICY_FILE, parse_duration

# The `platform` of a route that is forwarded and never judged: it must be written out,
# so a typo in a platform name can never silently turn judging off.
NO_PLATFORM = "none"


def platform_names() -> list[str]:
    """The adapters a route may name. Imported here, not at module level: `proxy.platforms`
    loads every adapter, and settings must stay cheap to import."""
    from proxy.platforms import PLATFORMS

    return sorted(PLATFORMS)


def _known_platforms() -> str:
    return f'known: {", ".join(platform_names())}, or "{NO_PLATFORM}" for a pass-through-only route'


class Route(BaseModel, extra="forbid"):
    """One upstream: `/{name}/...` (reverse mode) and requests to any of `hosts` (forward
    mode) are forwarded to `upstream` and judged by `platform`: an adapter name from
    `proxy.platforms.PLATFORMS`, or `"none"` for a route that is only ever passed through."""

    upstream: str
    platform: str
    # Host names this route owns in forward mode: a CONNECT to one is intercepted, and its
    # requests go to `upstream` with that name as `Host` and TLS server name.
    hosts: list[str] = Field(default_factory=list)
    # PEM file of CAs trusted for this upstream instead of the system store.
    ca_bundle: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _keys_and_platform(cls, data: Any) -> Any:
        # Checked here rather than per field so the message names the route (the error's
        # location), and so a typo gets a suggestion instead of pydantic's "extra inputs".
        if isinstance(data, str):
            raise ValueError(
                'a bare URL names no platform: write {"upstream": URL, "platform": NAME} '
                f"({_known_platforms()})"
            )
        if not isinstance(data, dict):
            raise ValueError('must be an upstream URL or {"upstream": URL, "platform": NAME}')
        keys = list(cls.model_fields)
        problems: list[str] = []
        suggested: set[str] = set()
        for key in data:
            if key not in cls.model_fields:
                close = difflib.get_close_matches(str(key), keys, n=1)
                suggested.update(close)
                hint = f"did you mean {close[0]!r}?" if close else f"keys: {', '.join(keys)}"
                problems.append(f"unknown key {key!r} ({hint})")
        for key in ("upstream", "platform"):
            if data.get(key) is None and key not in suggested:
                extra = f" ({_known_platforms()})" if key == "platform" else ""
                problems.append(f"missing key {key!r}{extra}")
        platform = data.get("platform")
        if platform is not None and platform != NO_PLATFORM:
            if not isinstance(platform, str) or platform not in platform_names():
                problems.append(f"unknown platform {platform!r} ({_known_platforms()})")
        if problems:
            raise ValueError("; ".join(problems))
        return data

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
            raise ValueError(f"must be an absolute http(s) URL, got {v!r}")
        if url.query_string or url.fragment:
            raise ValueError(f"must not carry a query or fragment: {v!r}")
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

# The DM API hosts dmgate knows, and the platform that judges their DMs. A route or a tunnel
# that would carry one of them past its adapter is refused: `{"x": {"upstream":
# "https://api.x.com", "platform": "bluesky"}}`, or `*.x.com` in DMGATE_TUNNEL_HOSTS, would
# forward every X DM unjudged (a red-team finding).
DM_HOSTS: dict[str, str] = {
    host: spec["platform"] for spec in DEFAULT_ROUTES.values() for host in spec["hosts"]
}


def tunnel_matches(pattern: str, host: str) -> bool:
    """Whether a DMGATE_TUNNEL_HOSTS pattern (`host`, or `*.example.com` for its
    subdomains) covers `host`."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"{key!r} is given twice: which one is meant?")
        out[key] = value
    return out


# First path segments dmgate serves itself.
RESERVED_PATHS = frozenset({"api", "metrics", "healthz", "readyz", "webhooks"})
# Review tokens guard who may release held DMs: long enough that guessing is hopeless
# (`openssl rand -hex 24` gives 48 characters).
MIN_REVIEW_TOKEN_LENGTH = 24
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
    """dmgate's settings. Each field's description is its line in `dmgate serve --help`;
    `json_schema_extra={"shown_default": ...}` says what a default that is not a plain value
    means (and keeps a secret's default from ever being printed)."""

    model_config = SettingsConfigDict(
        env_prefix="DMGATE_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    host: str = Field(
        "127.0.0.1", description="address to listen on (both modes and the review API)"
    )
    port: int = Field(8080, ge=0, le=65535, description="port to listen on")
    workers: int = Field(
        1,
        ge=1,
        le=256,
        description="processes serving the one port (`dmgate serve --workers N` too); "
        "each uses one core",
    )
    database_url: str = Field(
        "sqlite:///dmgate.db", description="the store: sqlite:///PATH or postgresql://..."
    )
    policy_file: Path = Field(
        DEFAULT_POLICY_FILE,
        description="policy file (YAML); reloaded when it changes",
        json_schema_extra={"shown_default": "the packaged policies/default.yaml"},
    )
    routes: Annotated[dict[str, Route], NoDecode] = Field(
        default_factory=lambda: {k: Route(**v) for k, v in DEFAULT_ROUTES.items()},
        description='JSON object: route name -> upstream URL or {"upstream", "platform", '
        '"hosts"?, "ca_bundle"?}; platform "none" = never judged; replaces the defaults',
        json_schema_extra={"shown_default": ", ".join(DEFAULT_ROUTES)},
    )
    # "name:token" pairs (a bare token gets a derived name); secrets never logged.
    review_tokens: Annotated[list[tuple[str, SecretStr]], NoDecode] = Field(
        default_factory=list,
        description=f"review API bearer tokens, name:token pairs, comma-separated "
        f"(at least {MIN_REVIEW_TOKEN_LENGTH} characters each)",
        json_schema_extra={"shown_default": "generated on first start, printed once"},
    )
    review_webhook_url: str | None = Field(None, description="where each new hold is announced")
    review_webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key signing those announcements"
    )
    hold_ttl: Duration = Field(
        timedelta(hours=72), description="a hold nobody decides expires and is never sent"
    )
    secret_key: SecretStr | None = Field(
        None,
        description="encrypts stored credentials, keys token hashes; replicas share it "
        "(16+ characters)",
        json_schema_extra={"shown_default": "key file dmgate.key (0600) beside the database"},
    )
    log_format: Literal["console", "json"] | None = Field(
        None,
        description="console or json",
        json_schema_extra={"shown_default": "console on a TTY, else json"},
    )
    access_log: bool = Field(
        False,
        description="one log line per request (event=http_request: method, path, status, "
        "duration; never the query or headers); off by default: it costs every "
        "pass-through request",
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="debug, info, warning, error or critical"
    )
    hold_status: Literal["platform", "202"] = Field(
        "platform",
        description="answer to a held DM: the platform's own success status, or 202",
    )
    review_notify: Literal["json", "slack"] = Field(
        "json",
        description="format of hold announcements to DMGATE_REVIEW_WEBHOOK_URL: json (signed) "
        "or slack (Block Kit incoming webhook, one message per campaign per minute)",
    )
    review_reminder: Duration = Field(
        timedelta(hours=4),
        description="holds pending longer than this are announced again, once per interval",
    )
    review_session_ttl: Duration = Field(
        timedelta(hours=12), description="a review inbox sign-in lasts this long"
    )
    public_url: str | None = Field(
        None,
        description="how clients reach dmgate (e.g. behind a TLS load balancer), for answers "
        "that point clients back at it",
        json_schema_extra={"shown_default": "the address each request came in on"},
    )
    webhook_secrets: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description='webhook secret per platform, JSON ({"x": "<consumer secret>"})',
    )
    webhook_relay: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="URL per platform that webhook payloads are passed on to, JSON",
    )
    max_dm_body: int = Field(
        1024 * 1024,
        ge=1024,
        description="bytes; a larger DM body gets 413 (pass-through is streamed, unlimited)",
    )
    upstream_connect_timeout: Duration = Field(
        timedelta(seconds=10), description="connecting to an upstream, then 502"
    )
    upstream_read_timeout: Duration = Field(
        timedelta(seconds=60), description="waiting for an upstream's answer, then 504"
    )
    upstream_pool_size: int = Field(
        100,
        ge=1,
        description="upstream connections open at once, all routes together, in each of "
        "dmgate's two upstream clients (requests without a body; all the rest)",
    )
    policy_reload_interval: Duration = Field(
        timedelta(seconds=2), description="how often the policy file is checked for changes"
    )
    expiry_interval: Duration = Field(
        timedelta(seconds=30), description="how often holds past DMGATE_HOLD_TTL are expired"
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        le=200,
        description="PostgreSQL connections per process, twice that at most in all (SQLite: fixed)",
    )
    retention_margin: Duration = Field(
        timedelta(hours=24),
        description="facts older than the longest policy window plus this are pruned",
    )
    retention_interval: Duration = Field(
        timedelta(minutes=5), description="how often old facts are pruned"
    )
    ca_dir: Path | None = Field(
        None,
        description="forward mode: the CA that signs intercepted hosts' certificates",
        json_schema_extra={"shown_default": "dmgate-ca/ beside the database"},
    )
    ca_passphrase: SecretStr | None = Field(None, description="encrypts the CA's key")
    tunnel_hosts: Annotated[list[tuple[str, int]], NoDecode] = Field(
        default_factory=list,
        description="CONNECT targets tunnelled blindly: host, host:port, *.example.com; "
        "comma-separated or a JSON list (anything else no route owns is refused)",
    )
    # A tunnel must not reach into the network dmgate runs in unless the operator says so.
    tunnel_private: bool = Field(
        False,
        description="let blind tunnels reach loopback, private and link-local addresses",
    )
    proxy_auth: Annotated[list[tuple[str, SecretStr]], NoDecode] = Field(
        default_factory=list,
        description="user:password pairs, comma-separated: forward-mode requests need "
        "them (else 407)",
    )
    client_handshake_timeout: Duration = Field(
        timedelta(seconds=10),
        description="for a client's first request head and its TLS handshake",
    )
    client_body_timeout: Duration = Field(
        timedelta(seconds=30),
        description="for a whole DM body to arrive (else 408; pass-through streams have no "
        "such limit)",
    )
    keepalive_timeout: Duration = Field(
        timedelta(seconds=75), description="idle client connections are closed after this"
    )

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

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, v: str) -> str:
        # The same schemes the store accepts (proxy.store.database.async_url), checked here
        # so a typo is a settings error at start, not a traceback from the store.
        schemes = (
            "sqlite:",
            "sqlite+aiosqlite:",
            "postgresql://",
            "postgres://",
            "postgresql+asyncpg:",
        )
        if not v.startswith(schemes):
            raise ValueError(
                f"unsupported scheme {v.split(':', 1)[0]!r}: use sqlite:///PATH or postgresql://..."
            )
        return v

    @field_validator("review_webhook_url", "public_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        return None if v is None else _require_http_url(v)

    @field_validator("webhook_relay")
    @classmethod
    def _http_urls(cls, v: dict[str, str]) -> dict[str, str]:
        return {name: _require_http_url(url, f"{name}: ") for name, url in v.items()}

    @field_validator("routes", mode="before")
    @classmethod
    def _parse_routes(cls, v: Any) -> Any:
        # DMGATE_ROUTES replaces the default routes rather than merging with them: the
        # routes dmgate serves are exactly the ones written (README, "Settings").
        if isinstance(v, str):
            try:
                v = json.loads(v, object_pairs_hook=_no_duplicate_keys)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON: {exc}") from None
        if not isinstance(v, dict):
            raise ValueError("must be a JSON object: route name -> upstream")
        routes: dict[str, Any] = {}
        for name, spec in v.items():
            if not name or not set(name) <= _ROUTE_NAME_CHARS or name in RESERVED_PATHS:
                raise ValueError(
                    f"route name {name!r} must be lowercase letters, digits, - or _ "
                    f"and not one of dmgate's own paths ({', '.join(sorted(RESERVED_PATHS))})"
                )
            default = DEFAULT_ROUTES.get(name)
            if default is not None:
                # A default route's name keeps that route's platform unless it names one;
                # any other route must name its platform (Route refuses it otherwise).
                if isinstance(spec, str):
                    spec = {"upstream": spec}
                if isinstance(spec, dict) and spec.get("platform") is None:
                    spec = {**spec, "platform": default["platform"]}
            if isinstance(spec, dict) and "hosts" not in spec:
                own = (default or {}).get("hosts") or _own_host(spec.get("upstream"))
                spec = {**spec, "hosts": own}
            routes[name] = spec
        return routes

    @field_validator("routes")
    @classmethod
    def _dm_hosts_judged(cls, v: dict[str, Route]) -> dict[str, Route]:
        for name, route in v.items():
            upstream = (URL(route.upstream).host or "").lower().rstrip(".")
            for host in {upstream, *route.hosts}:
                platform = DM_HOSTS.get(host)
                if platform is not None and route.platform != platform:
                    raise ValueError(
                        f"route {name!r} would carry {host}, whose DMs only the {platform!r} "
                        f"platform judges, with platform {route.platform!r}: its DMs would "
                        f'pass unjudged (give the route "platform": "{platform}")'
                    )
        return v

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
            try:
                v = json.loads(v) if v.strip().startswith("[") else v.split(",")
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a valid JSON list: {exc}") from None
        entries = [_tunnel_entry(e) if isinstance(e, str) else e for e in v if str(e).strip()]
        for pattern, _port in entries:
            covered = sorted(h for h in DM_HOSTS if tunnel_matches(str(pattern), h))
            if covered:
                raise ValueError(
                    f"tunnel host {pattern!r} covers {', '.join(covered)}: a blind tunnel "
                    "there would carry DMs unjudged (route it instead)"
                )
        return entries

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

    @field_validator("review_tokens")
    @classmethod
    def _tokens_long_enough(cls, v: list[tuple[str, SecretStr]]) -> list[tuple[str, SecretStr]]:
        # Named by the token's name, never by the token: the message ends up in logs.
        short = [
            name for name, token in v if len(token.get_secret_value()) < MIN_REVIEW_TOKEN_LENGTH
        ]
        if short:
            names = ", ".join(map(repr, short))
            which = f"tokens {names} are" if len(short) > 1 else f"token {names} is"
            raise ValueError(
                f"{which} shorter than {MIN_REVIEW_TOKEN_LENGTH} characters "
                "(make one with: openssl rand -hex 24)"
            )
        return v

    @field_validator("webhook_secrets", "webhook_relay", mode="before")
    @classmethod
    def _parse_json_object(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                v = json.loads(v) if v.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON: {exc}") from None
        return v


def _require_http_url(value: str, where: str = "") -> str:
    url = URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{where}must be an absolute http(s) URL")
    return value


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
