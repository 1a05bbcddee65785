"""Every error dmgate answers with itself, mapped to HTTP in one place.

The body always names dmgate, so an operator reading a tool's logs can tell a dmgate answer
from the platform's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, ClassVar

import structlog
from aiohttp import web

from proxy.store.errors import StoreUnavailable

log = structlog.get_logger("dmgate")

PROXY_AUTHENTICATE = 'Basic realm="dmgate", charset="UTF-8"'


class DMGateError(Exception):
    """Base of everything dmgate answers on its own behalf."""

    status = 500
    code = "internal_error"
    headers: ClassVar[dict[str, str]] = {}  # sent with every answer of this kind

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> bytes:
        doc = {"error": self.code, "detail": self.detail, "source": "dmgate", **self.extra}
        return json.dumps(doc).encode()

    def response_headers(self) -> dict[str, str]:
        return self.headers

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            body=self.body(),
            content_type="application/json",
            headers=self.response_headers() or None,
        )


# Requests dmgate refuses.
class BadRequest(DMGateError):
    """The request cannot be handled as sent (malformed, unsafe path, unjudgeable DM)."""

    status = 400
    code = "bad_request"


class Unauthorized(DMGateError):
    """No valid credentials (a webhook's signature, a review token)."""

    status = 401
    code = "unauthorized"


class BearerRequired(Unauthorized):
    """The review API needs a valid bearer token (RFC 6750 names the scheme in the header)."""

    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="dmgate"'}


class ProxyAuthRequired(DMGateError):
    """Forward mode with DMGATE_PROXY_AUTH set: the request carries no valid credentials."""

    status = 407
    code = "proxy_auth_required"
    headers: ClassVar[dict[str, str]] = {"Proxy-Authenticate": PROXY_AUTHENTICATE}


class Forbidden(DMGateError):
    """Forward mode: a destination dmgate does not serve (it is not an open proxy)."""

    status = 403
    code = "forbidden"


class RequestTimeout(DMGateError):
    """No complete request head (or CONNECT head) in time, or a DM body that did not arrive
    in time."""

    status = 408
    code = "request_timeout"

    def response(self) -> web.Response:
        resp = super().response()
        resp.force_close()  # the rest of the request may still be trickling in
        return resp


class HeadersTooLarge(DMGateError):
    """Forward mode: a CONNECT head beyond the size limit."""

    status = 431
    code = "request_header_fields_too_large"


class ForwardModeUnavailable(DMGateError):
    """Forward mode: dmgate has no CA that may sign for the host."""

    status = 503
    code = "forward_mode_unavailable"


class MisdirectedRequest(DMGateError):
    """Forward mode: a request for another host inside an intercepted connection."""

    status = 421
    code = "misdirected_request"


class NotFound(DMGateError):
    """No configured route or no such resource."""

    status = 404
    code = "not_found"


class MethodNotAllowed(DMGateError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, detail: str, allow: Iterable[str] = (), **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.allow = ", ".join(allow)

    def response_headers(self) -> dict[str, str]:
        # RFC 9110: a 405 lists the methods the resource does support.
        return {**self.headers, "Allow": self.allow} if self.allow else self.headers


class Conflict(DMGateError):
    """The hold is not in a state that allows this (e.g. approving a rejected hold)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(DMGateError):
    """A DM body larger than dmgate will buffer to judge."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(DMGateError):
    status = 415
    code = "unsupported_media_type"


class Unprocessable(DMGateError):
    """The body parsed but is not valid (e.g. a reject without a reason)."""

    status = 422
    code = "unprocessable"


# Dependencies that failed.
class UpstreamUnavailable(DMGateError):
    """Could not connect to the upstream, or it broke the connection."""

    status = 502
    code = "upstream_unavailable"


class EditNotJudged(DMGateError):
    """An edit of a message dmgate never saw sent, and the platform would not say whether
    that message is a DM: the edit fails closed (not forwarded); the tool may retry."""

    status = 502
    code = "edit_not_judged"


class UpstreamTimeout(DMGateError):
    """The upstream did not answer in time."""

    status = 504
    code = "upstream_timeout"


# The store's `StoreUnavailable` (proxy/store/errors.py: the database is down or locked) is
# part of this tree too. The store raises it without knowing HTTP; answering_errors answers
# it, whichever endpoint met it.
class StoreUnavailableAnswer(DMGateError):
    """503 for `StoreUnavailable`: DMs fail closed rather than pass unjudged; the review API
    and webhooks answer 503 so their callers retry."""

    status = 503
    code = "store_unavailable"


class PolicyFailure(DMGateError):
    """A policy raised while judging: the DM fails closed."""

    status = 503
    code = "policy_failure"


async def answering_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """`handler(request)`, with dmgate's own errors, aiohttp's refusals and store outages
    turned into JSON answers (the body of dmgate's one middleware, `proxy/app.py`)."""
    try:
        return await handler(request)
    except DMGateError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if request.method == "CONNECT":
            # aiohttp's router never matches a CONNECT target (an authority, not a path);
            # dmgate answers CONNECT only as the first request of a connection.
            return MethodNotAllowed(
                "CONNECT must be the first request on a new connection to dmgate"
            ).response()
        if exc.status == 404:
            return NotFound(exc.reason or "not found").response()
        if exc.status == 405:
            allowed = getattr(exc, "allowed_methods", ())
            return MethodNotAllowed(
                f"{request.method} is not allowed here", allow=sorted(allowed)
            ).response()
        if exc.status == 413:
            # request.read() beyond the application's client_max_size.
            return PayloadTooLarge("the request body is too large").response()
        raise
    except StoreUnavailable as exc:
        return _store_unavailable(request, exc).response()
    except Exception:
        # A bug in dmgate: say so in JSON, log it, and never forward anything unjudged.
        log.exception("internal_error", method=request.method, path=request.path)
        return DMGateError("dmgate failed to handle this request (see its log)").response()


def _store_unavailable(request: web.Request, exc: StoreUnavailable) -> StoreUnavailableAnswer:
    from proxy.context import CTX  # proxy.context imports modules that import this one

    ctx = request.app.get(CTX)
    if ctx is not None:
        ctx.metrics.store_failures.inc()
    # The driver error's type only: its message can carry SQL, parameters or a connection
    # string.
    log.error("store_unavailable", method=request.method, path=request.path, error=exc.cause)
    return StoreUnavailableAnswer(str(exc))
