"""A missing tool skips its tests with the reason, except under CI, where it fails them."""

from __future__ import annotations

import pytest

from tests.deploy.tools import concrete, executable


def test_missing_tool_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-tool-xyz is not installed"):
        executable("no-such-tool-xyz")


def test_missing_tool_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set: required"):
        executable("no-such-tool-xyz")


def test_grafana_variables_are_replaced_for_prometheus():
    assert (
        concrete('rate(x{route=~"$route", platform=~"${platform}"}[$__rate_interval])')
        == 'rate(x{route=~".*", platform=~".*"}[5m])'
    )
