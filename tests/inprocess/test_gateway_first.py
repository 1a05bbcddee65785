"""The listener hands a route's requests to the gateway without asking the router
(proxy/app.py:gateway_first); what the router would have answered must not change."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.inprocess.conftest import Gate


@pytest.fixture
async def gate(gate_factory, fake_x) -> Gate:
    # `review` is also the first segment of the review inbox's own paths.
    routes = {
        "plain": {"upstream": fake_x.url, "platform": "none"},
        "review": {"upstream": fake_x.url, "platform": "none"},
    }
    return await gate_factory(env={"DMGATE_ROUTES": json.dumps(routes)})


async def test_a_routes_path_reaches_the_upstream_and_is_counted(gate, fake_x):
    before = gate.metric("dmgate_requests_total", route="plain", kind="passthrough")
    r = await gate.client.get("/plain/_test/echo/a?b=c")
    assert r.status_code == 200
    assert fake_x.state.requests[-1].raw_path == "/_test/echo/a?b=c"
    assert gate.metric("dmgate_requests_total", route="plain", kind="passthrough") == before + 1


async def test_a_route_named_like_dmgates_own_paths_stays_behind_them(gate, fake_x):
    before = len(fake_x.state.requests)
    r = await gate.client.get("/review/signin")
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    assert len(fake_x.state.requests) == before


@pytest.mark.parametrize("path", ["/plain/../api/v1/holds", "/plain/%2e%2e/api/v1/holds"])
async def test_dot_segments_are_refused_whoever_dispatches_them(gate, fake_x, path):
    before = len(fake_x.state.requests)
    # A raw request line: HTTP clients remove dot segments themselves.
    reader, writer = await asyncio.open_connection("127.0.0.1", gate.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: dmgate\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400"
    assert json.loads(body)["source"] == "dmgate"
    assert len(fake_x.state.requests) == before


async def test_dmgates_own_endpoints_still_answer(gate):
    assert (await gate.client.get("/healthz")).json() == {"status": "alive"}
    r = await gate.client.get("/api/v1/holds")
    assert r.status_code == 401
