"""Every setting dmgate reads, from `DMGATE_*` environment variables (and an optional `.env`)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from yarl import URL

from policies.config import DEFAULT_POLICY_FILE, parse_duration


class Route(BaseModel, extra="forbid"):
    """One upstream: `/{name}/...` is forwarded to `upstream` and judged by `platform`."""

    upstream: str
    platform: str

    @field_validator("upstream")
    @classmethod
    def _absolute_http_url(cls, v: str) -> str:
        url = URL(v)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"upstream must be an absolute http(s) URL, got {v!r}")
        if url.query_string or url.fragment:
            raise ValueError(f"upstream must not carry a query or fragment: {v!r}")
        return v.rstrip("/")


# Route name -> (upstream, platform). Only X is understood by this release; the others are
# passed through untouched until their adapters land, so a tool can already point at them.
DEFAULT_ROUTES: dict[str, dict[str, str]] = {
    "x": {"upstream": "https://api.x.com", "platform": "x"},
    "twitter": {"upstream": "https://api.twitter.com", "platform": "x"},
    "linkedin": {"upstream": "https://api.linkedin.com", "platform": "linkedin"},
    "linkedin-web": {"upstream": "https://www.linkedin.com", "platform": "linkedin"},
    "meta": {"upstream": "https://graph.facebook.com", "platform": "meta"},
    "instagram": {"upstream": "https://graph.instagram.com", "platform": "meta"},
    "bluesky": {"upstream": "https://bsky.social", "platform": "bluesky"},
}

# First path segments dmgate serves itself.
RESERVED_PATHS = frozenset({"api", "metrics", "healthz", "readyz", "webhooks"})
_ROUTE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


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

    @field_validator(
        "secret_key",
        "review_webhook_url",
        "review_webhook_secret",
        "log_format",
        "public_url",
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
            if isinstance(spec, str):
                # A bare URL keeps the platform of the default route of that name.
                platform = DEFAULT_ROUTES.get(name, {}).get("platform", "passthrough")
                spec = {"upstream": spec, "platform": platform}
            routes[name] = spec
        return routes

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


def _named_token(entry: str) -> tuple[str, SecretStr]:
    import hashlib

    name, sep, token = entry.partition(":")
    if sep and name and token and all(c.isalnum() or c in "-_.@" for c in name):
        return name, SecretStr(token)
    # A bare token is named by a short digest so decisions can say who decided.
    return "token-" + hashlib.sha256(entry.encode()).hexdigest()[:8], SecretStr(entry)
