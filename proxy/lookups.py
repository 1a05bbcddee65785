"""Questions dmgate asks a platform itself, on a tool's behalf: "who am I" for a credential
it has never identified (`identity`), "is this status direct" for an edit of a message it
never saw sent (`edits`). Each is one request with the tool's own credential, its answer
read capped, decoded and taught through the adapter's `learn`, like the tool's own call."""

from __future__ import annotations

from aiohttp import ClientError

from proxy.errors import DMGateError
from proxy.facts import Fact
from proxy.platforms.base import Platform, RequestView
from proxy.refusals import decoded_body
from proxy.relay import Relay
from proxy.routing import Target, upstream_for
from proxy.streams import read_capped

# What a lookup can fail with: the upstream unreachable or slow, or an answer dmgate
# cannot read (aiohttp's client errors; dmgate's own client's are ConnectionErrors). Callers
# log it and treat the question as unanswered.
LOOKUP_FAILURES = (DMGateError, ClientError, ConnectionError, TimeoutError)


async def ask(
    relay: Relay, target: Target, platform: Platform, view: RequestView, limit: int
) -> tuple[int, list[Fact]]:
    """Send `view` upstream on `target`'s route; the answer's status and what it teaches.
    An answer over `limit` bytes teaches nothing. Raises one of LOOKUP_FAILURES."""
    url = upstream_for(target, view.path, view.query)
    async with await relay.send(
        target.route_name, view.method, url, list(view.headers.items()), None, target.host
    ) as resp:
        status = resp.status
        encoding = resp.headers.get("Content-Encoding")
        body = await read_capped(resp.content, limit)
    # Not asked for (dmgate sends no Accept-Encoding), but some servers compress anyway.
    readable = decoded_body(body, encoding, limit) if body else b""
    return status, platform.learn(platform.classify(view), None, status, readable)
