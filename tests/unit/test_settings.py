"""Settings fail closed: every way to misconfigure dmgate is refused with a message naming
the variable, and inside `DMGATE_ROUTES` the route, the key and the value."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from proxy.cli import _bind_failure, _settings_errors, _settings_help
from proxy.platforms import PLATFORMS
from proxy.settings import DEFAULT_ROUTES, NO_PLATFORM, Settings, platform_names

REPO = Path(__file__).resolve().parent.parent.parent
BROKEN = REPO / "tests" / "fixtures" / "broken-config"
CASES = sorted(BROKEN.glob("*.env"))
LONG_TOKEN = "tok-alice-0123456789abcdefgh"


@pytest.fixture(autouse=True)
def _no_dmgate_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("DMGATE_")]:
        monkeypatch.delenv(name)


def settings(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg, arg-type]


def refusal(**env: str) -> list[str]:
    """The lines `dmgate serve` prints for these settings."""
    with pytest.raises(ValidationError) as err:
        settings(**env)
    return _settings_errors(err.value).splitlines()


def fixture_lines(path: Path, tag: str) -> list[str]:
    prefix = f"# {tag}: "
    return [
        line[len(prefix) :] for line in path.read_text().splitlines() if line.startswith(prefix)
    ]


# --- routes ---------------------------------------------------------------------------------


def test_an_unknown_platform_names_the_route_the_value_and_the_known_ones():
    lines = refusal(routes='{"tw": {"upstream": "https://api.x.com", "platform": "twiter"}}')
    assert lines == [
        "dmgate: DMGATE_ROUTES: routes.tw: unknown platform 'twiter' (known: bluesky, linkedin, "
        'mastodon, meta, x, or "none" for a pass-through-only route)'
    ]


def test_the_known_platforms_are_the_adapters():
    assert platform_names() == sorted(PLATFORMS)
    assert NO_PLATFORM not in PLATFORMS
    assert {r["platform"] for r in DEFAULT_ROUTES.values()} <= set(PLATFORMS)


def test_a_custom_route_must_name_its_platform():
    (line,) = refusal(routes='{"social": {"upstream": "https://mastodon.example"}}')
    assert line.startswith("dmgate: DMGATE_ROUTES: routes.social: missing key 'platform' (known:")


def test_a_bare_url_is_enough_only_for_a_default_route_name():
    (line,) = refusal(routes='{"x": "https://api.x.com", "plain": "http://127.0.0.1:9000"}')
    assert line.startswith("dmgate: DMGATE_ROUTES: routes.plain: a bare URL names no platform")
    assert '"none" for a pass-through-only route' in line


def test_a_default_route_name_keeps_its_platform_and_hosts():
    s = settings(
        routes='{"x": "http://127.0.0.1:9000", "linkedin": {"upstream": "https://l.example"}}'
    )
    assert (s.routes["x"].platform, s.routes["x"].hosts) == ("x", ["api.x.com"])
    assert s.routes["linkedin"].platform == "linkedin"


def test_an_unknown_key_gets_a_suggestion():
    (line,) = refusal(routes='{"x": {"upstrem": "https://api.x.com", "platform": "x"}}')
    assert line == (
        "dmgate: DMGATE_ROUTES: routes.x: unknown key 'upstrem' (did you mean 'upstream'?)"
    )


def test_an_unknown_key_without_a_close_match_lists_the_keys():
    (line,) = refusal(routes='{"x": {"upstream": "https://a.example", "platform": "x", "q": 1}}')
    assert line.endswith("routes.x: unknown key 'q' (keys: upstream, platform, hosts, ca_bundle)")


def test_a_missing_upstream_is_named():
    assert refusal(routes='{"mastodon": {"platform": "mastodon"}}') == [
        "dmgate: DMGATE_ROUTES: routes.mastodon: missing key 'upstream'"
    ]


def test_platform_none_is_the_explicit_pass_through_only_route():
    s = settings(routes='{"plain": {"upstream": "http://127.0.0.1:9000", "platform": "none"}}')
    assert s.routes["plain"].platform == NO_PLATFORM
    assert s.routes["plain"].hosts == []  # an IP upstream owns no host name


@pytest.mark.parametrize(
    ("routes", "host"),
    [
        ('{"x": {"upstream": "https://api.x.com", "platform": "bluesky"}}', "api.x.com"),
        ('{"x": {"upstream": "https://api.x.com", "platform": "none"}}', "api.x.com"),
        ('{"li": {"upstream": "https://api.linkedin.com", "platform": "x"}}', "api.linkedin.com"),
        # Forward mode: the host it owns, whatever its upstream.
        (
            '{"p": {"upstream": "http://127.0.0.1:9", "platform": "none",'
            ' "hosts": ["bsky.social"]}}',
            "bsky.social",
        ),
    ],
)
def test_a_dm_api_host_is_refused_on_a_route_that_would_not_judge_its_dms(routes, host):
    (line,) = refusal(routes=routes)
    assert host in line and "unjudged" in line, line


def test_a_route_given_twice_is_refused_not_the_last_one_taken():
    twice = '{"x": {"upstream": "https://api.x.com", "platform": "x"}, "x": "http://127.0.0.1:9"}'
    (line,) = refusal(routes=twice)
    assert "'x' is given twice" in line, line


@pytest.mark.parametrize("pattern", ["*.x.com", "api.twitter.com", "*.com", "*.linkedin.com"])
def test_a_tunnel_over_a_dm_api_host_is_refused(pattern):
    (line,) = refusal(
        routes='{"m": {"upstream": "https://masto.example", "platform": "mastodon"}}',
        tunnel_hosts=pattern,
    )
    assert "unjudged" in line and "DMGATE_TUNNEL_HOSTS" in line, line


def test_routes_replace_the_defaults():
    s = settings(routes='{"x": "https://api.x.com"}')
    assert list(s.routes) == ["x"]


def test_the_readme_example_keeps_the_defaults_and_adds_two_routes():
    readme = (REPO / "README.md").read_text()
    start = readme.index("export DMGATE_ROUTES='{") + len("export DMGATE_ROUTES='")
    example = readme[start : readme.index("}'", start) + 1]
    s = settings(routes=example)
    defaults = settings().routes
    assert {n: r for n, r in s.routes.items() if n in defaults} == defaults
    assert s.routes["mastodon"].hosts == ["mastodon.example"]
    assert s.routes["analytics"].platform == NO_PLATFORM


def test_errors_inside_a_route_give_the_path_to_the_key():
    (line,) = refusal(
        routes='{"x": {"upstream": "https://a.example", "platform": "x", "hosts": [5]}}'
    )
    assert line.startswith("dmgate: DMGATE_ROUTES: routes.x.hosts[0]: ")
    (line,) = refusal(routes='{"x": "ftp://api.x.com"}')
    assert "routes.x.upstream: must be an absolute http(s) URL" in line


# --- review tokens --------------------------------------------------------------------------


def test_a_short_review_token_is_refused_by_name_never_shown():
    lines = refusal(review_tokens=f"alice:tok-alice-0123456789,bob:{LONG_TOKEN}")
    assert lines == [
        "dmgate: DMGATE_REVIEW_TOKENS: token 'alice' is shorter than 24 characters "
        "(make one with: openssl rand -hex 24)"
    ]
    (line,) = refusal(review_tokens="tooshort-but-bare")
    assert "tooshort" not in line and "token 'token-" in line


def test_review_tokens_of_24_characters_and_more_are_accepted():
    s = settings(review_tokens=f"alice:{'a' * 24},{LONG_TOKEN}")
    (alice, _), (bare, _) = s.review_tokens
    assert alice == "alice" and bare.startswith("token-")


# --- other settings name their variable -----------------------------------------------------


@pytest.mark.parametrize(
    "env, line",
    [
        ({"hold_ttl": "3 days"}, "dmgate: DMGATE_HOLD_TTL: invalid duration"),
        ({"routes": "{nope"}, "dmgate: DMGATE_ROUTES: not valid JSON"),
        ({"webhook_secrets": "{nope"}, "dmgate: DMGATE_WEBHOOK_SECRETS: not valid JSON"),
        ({"tunnel_hosts": "[nope"}, "dmgate: DMGATE_TUNNEL_HOSTS: not a valid JSON list"),
        ({"database_url": "mysql://db/x"}, "dmgate: DMGATE_DATABASE_URL: unsupported scheme"),
        ({"review_webhook_url": "review.example"}, "dmgate: DMGATE_REVIEW_WEBHOOK_URL: must be"),
        ({"public_url": "ftp://dmgate.example"}, "dmgate: DMGATE_PUBLIC_URL: must be"),
        ({"webhook_relay": '{"x": "tool/hook"}'}, "dmgate: DMGATE_WEBHOOK_RELAY: x: must be"),
        ({"log_level": "loud"}, "dmgate: DMGATE_LOG_LEVEL: Input should be 'debug'"),
        ({"port": "http"}, "dmgate: DMGATE_PORT: Input should be a valid integer"),
    ],
)
def test_each_invalid_setting_names_its_variable(env, line):
    (got,) = refusal(**env)
    assert got.startswith(line)


def test_valid_values_of_the_newly_checked_settings_pass():
    s = settings(
        database_url="postgresql://dmgate:pw@db:5432/dmgate",
        review_webhook_url="https://review.example/hook",
        log_level="WARNING",
        webhook_relay='{"x": "http://tool:9000/hook"}',
    )
    assert s.log_level == "warning"


# --- the fixtures that `dmgate serve` is run against in tests/integration ---------------------


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_each_broken_config_fixture_is_refused_in_process(case: Path):
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=case)  # type: ignore[call-arg]
    out = _settings_errors(err.value)
    expected = fixture_lines(case, "expect")
    assert expected, f"{case.name} has no `# expect:` line"
    for fragment in expected:
        assert fragment in out
    for secret in fixture_lines(case, "secret"):
        assert secret not in out


# --- serve --help and the listening socket ----------------------------------------------------


def test_help_lists_every_setting_with_a_meaning(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DMGATE_SECRET_KEY", "an-operator-secret-0123456789")
    text = _settings_help()
    for name, field in Settings.model_fields.items():
        assert f"DMGATE_{name.upper()}  (default: " in text
        assert field.description, f"{name} has no description"
    assert "DMGATE_HOLD_TTL  (default: 72h)" in text
    assert "DMGATE_UPSTREAM_READ_TIMEOUT  (default: 60s)" in text
    assert "DMGATE_ROUTES  (default: x, twitter, linkedin" in text
    assert "an-operator-secret" not in text  # defaults only, never the environment's values


def test_bind_failures_become_one_line_and_other_errors_stay_errors():
    assert _bind_failure(OSError(errno.EADDRINUSE, "bind")) == "address already in use"
    assert _bind_failure(socket.gaierror(-2, "Name or service not known")) == (
        "name or service not known"
    )
    assert _bind_failure(PermissionError(errno.EACCES, "denied", "/data/dmgate.db")) is None
    assert _bind_failure(OSError(errno.EIO, "disk")) is None


def test_a_misspelt_setting_is_refused_and_other_dmgate_variables_are_not():
    from proxy.cli import _misspelt_variables
    from proxy.settings import Settings

    env = {
        "DMGATE_HOLD_TLL": "3h",  # a typo: the hold TTL would silently stay 72h
        "DMGATE_POLICY_FLIE": "/etc/dmgate/policies.yaml",
        "DMGATE_HOLD_TTL": "1h",
        "DMGATE_SERVICE_HOST": "10.0.0.1",  # Kubernetes service links
        "DMGATE_PORT_8080_TCP": "tcp://10.0.0.1:8080",
        "DMGATE_TEST_BACKEND": "postgresql",
        "DMGATE_SOMETHING_ELSE": "x",  # no setting is close: not ours to judge
        "dmgate_policy_flie": "/etc/dmgate/strict.yaml",  # settings are read in any case
        "HOME": "/root",
    }
    assert _misspelt_variables(env, Settings.model_fields) == [
        "dmgate: DMGATE_HOLD_TLL is not a setting (did you mean DMGATE_HOLD_TTL?)",
        "dmgate: DMGATE_POLICY_FLIE is not a setting (did you mean DMGATE_POLICY_FILE?)",
        "dmgate: dmgate_policy_flie is not a setting (did you mean DMGATE_POLICY_FILE?)",
    ]
