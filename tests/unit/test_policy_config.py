"""The policy file: good files load, every broken one is refused naming the key."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from policies.config import (
    DEFAULT_POLICY_FILE,
    PolicyFileError,
    load_policy_file,
    parse_policies,
)
from policies.first_contact_pitch import PitchMatch
from policies.model import Mode
from policies.schema import Duration, PolicyAction, format_duration, parse_duration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "policies"


# --- durations ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("1h", timedelta(hours=1)),
        ("3d", timedelta(days=3)),
        (" 2h ", timedelta(hours=2)),
        ("45", timedelta(seconds=45)),
        (600, timedelta(minutes=10)),
    ],
)
def test_parse_duration_accepts_units_and_plain_seconds(text: str | int, expected: timedelta):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("soon", "invalid duration 'soon' (use 90s, 10m, 1h, 3d)"),
        ("1.5h", "invalid duration '1.5h'"),
        ("-5m", "invalid duration '-5m'"),
        ("1w", "invalid duration '1w'"),
        ("", "invalid duration ''"),
        (True, "invalid duration True"),
        (1.5, "invalid duration 1.5"),
        ("0s", "duration must be positive, got '0s'"),
        (0, "duration must be positive, got 0"),
        (-30, "duration must be positive, got -30"),
        ("99999999999999d", "too large"),
    ],
)
def test_parse_duration_refuses_garbage_zero_and_negative(value: object, fragment: str):
    with pytest.raises(ValueError) as caught:
        parse_duration(value)  # type: ignore[arg-type]
    assert fragment in str(caught.value)


def test_duration_type_works_in_any_pydantic_model():
    class Settings(BaseModel):
        ttl: Duration

    assert Settings(ttl="72h").ttl == timedelta(hours=72)
    assert Settings(ttl=timedelta(minutes=1)).ttl == timedelta(minutes=1)
    with pytest.raises(ValidationError) as caught:
        Settings(ttl="tomorrow")
    assert "invalid duration 'tomorrow'" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "rounded", "exact"),
    [
        (timedelta(seconds=42.7), "42s", "42s"),
        (timedelta(seconds=90), "1m", "90s"),
        (timedelta(minutes=5, seconds=3), "5m", "303s"),
        (timedelta(hours=2), "2h", "2h"),
        (timedelta(hours=24), "24h", "24h"),
        (timedelta(days=3), "3d", "3d"),
        (timedelta(seconds=-1), "0s", "0s"),
    ],
)
def test_format_duration(value: timedelta, rounded: str, exact: str):
    assert format_duration(value) == rounded
    assert format_duration(value, exact=True) == exact


# --- files that load ---


def test_default_policy_file_loads_with_the_documented_defaults():
    loaded = load_policy_file(DEFAULT_POLICY_FILE)
    config = loaded.config
    assert config.mode is Mode.ENFORCE
    assert config.policies.follow_timing is not None
    assert config.policies.follow_timing.action is PolicyAction.HOLD
    assert config.policies.follow_timing.window == timedelta(hours=1)
    reuse = config.policies.template_reuse
    assert reuse is not None
    assert reuse.action is PolicyAction.HOLD
    assert (reuse.min_recipients, reuse.window) == (3, timedelta(hours=24))
    assert loaded.path == DEFAULT_POLICY_FILE


def test_default_policy_file_states_the_schema_defaults():
    # The shipped file spells out every knob; it must not drift from the model defaults.
    shipped = load_policy_file(DEFAULT_POLICY_FILE).config.policies.template_reuse
    implicit = parse_policies("policies: {template_reuse: {action: hold}}").config
    assert shipped == implicit.policies.template_reuse


def test_default_policy_file_ships_the_first_contact_policies_off_with_their_defaults():
    policies = load_policy_file(DEFAULT_POLICY_FILE).config.policies
    assert policies.first_contact_pitch is not None and policies.burst is not None
    assert policies.first_contact_pitch.action is PolicyAction.OFF
    assert policies.burst.action is PolicyAction.OFF
    implicit = parse_policies(
        "policies: {first_contact_pitch: {action: off}, burst: {action: off}}"
    ).config.policies
    assert policies.first_contact_pitch == implicit.first_contact_pitch
    assert policies.burst == implicit.burst


def test_first_contact_policy_knobs_are_read():
    config = parse_policies(
        """
policies:
  first_contact_pitch:
    action: hold
    mode: shadow
    match: link_and_cta
    allowed_domains: [Example.com, "www.calendly.com"]
    phrases: ["let's talk"]
    extra_phrases: ["schau dir"]
  burst:
    action: block
    max_first_contacts: 5
    window: 10m
"""
    ).config.policies
    pitch, burst = config.first_contact_pitch, config.burst
    assert pitch is not None and burst is not None
    assert pitch.match is PitchMatch.LINK_AND_CTA
    assert pitch.mode is Mode.SHADOW
    assert pitch.allowed_domains == ("example.com", "calendly.com")
    assert (pitch.phrases, pitch.extra_phrases) == (("let's talk",), ("schau dir",))
    assert (burst.action, burst.max_first_contacts) == (PolicyAction.BLOCK, 5)
    assert burst.window == timedelta(minutes=10)


def test_action_off_unquoted_is_off_and_other_keys_are_read():
    config = load_policy_file(FIXTURES / "action_off_unquoted.yaml").config
    assert config.mode is Mode.SHADOW
    assert config.policies.follow_timing is not None
    assert config.policies.follow_timing.action is PolicyAction.OFF
    reuse = config.policies.template_reuse
    assert reuse is not None
    assert reuse.action is PolicyAction.BLOCK
    assert reuse.mode is Mode.ENFORCE
    assert reuse.window == timedelta(minutes=90)
    assert (reuse.min_recipients, reuse.min_tokens, reuse.similarity) == (5, 8, 0.6)


@pytest.mark.parametrize("spelling", ["off", "'off'", "no", "false"])
def test_every_yaml_spelling_of_off_means_off(spelling: str):
    loaded = parse_policies(f"policies:\n  follow_timing:\n    action: {spelling}\n")
    assert loaded.config.policies.follow_timing is not None
    assert loaded.config.policies.follow_timing.action is PolicyAction.OFF


def test_absent_policies_are_none_and_mode_defaults_to_enforce():
    config = parse_policies("policies:\n  burst: {action: hold}\n").config
    assert config.mode is Mode.ENFORCE
    assert config.policies.follow_timing is None
    assert config.policies.template_reuse is None


@pytest.mark.parametrize(
    "text",
    [
        "policies:\n",
        "mode: enforce\npolicies:\n  # template_reuse: {action: block}\n",
        "policies: {}\n",
        "mode: shadow\n",
    ],
)
def test_a_file_that_names_no_policy_is_refused_it_would_judge_nothing(text):
    with pytest.raises(PolicyFileError) as err:
        parse_policies(text)
    assert "names no policy, so dmgate would judge nothing" in str(err.value)
    # Off on purpose is said so.
    assert parse_policies("policies: {burst: {action: off}}\n").config.policies.burst


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("24", "a duration needs a unit, got 24"),
        ("24:00", "a duration needs a unit, got 1440"),  # YAML 1.1 reads base 60
        ("'24'", "a duration needs a unit, got '24'"),
        ("0x18", "a duration needs a unit, got 24"),
        ("999999999d", "longer than a year"),
        ("367d", "longer than a year"),
    ],
)
def test_a_window_needs_a_unit_and_at_most_a_year(window, expected):
    with pytest.raises(PolicyFileError) as err:
        parse_policies(f"policies: {{follow_timing: {{action: hold, window: {window}}}}}\n")
    assert expected in str(err.value), str(err.value)
    ok = parse_policies("policies: {follow_timing: {action: hold, window: 366d}}\n")
    assert ok.config.policies.follow_timing.window.days == 366


@pytest.mark.parametrize(
    "section",
    [
        "template_reuse: {action: hold, min_recipients: 99999999999999999999999}",
        "template_reuse: {action: hold, min_recipients: 9223372036854775808}",
        "burst: {action: hold, max_first_contacts: 99999999999999999999}",
    ],
)
def test_counts_too_large_to_store_are_refused_not_answered_503(section):
    with pytest.raises(PolicyFileError) as err:
        parse_policies(f"policies: {{{section}}}\n")
    assert "less than or equal" in str(err.value), str(err.value)


def test_version_is_a_short_sha256_of_the_bytes(tmp_path: Path):
    path = tmp_path / "p.yaml"
    text = b"mode: shadow\npolicies: {burst: {action: hold}}\n"
    path.write_bytes(text)
    first = load_policy_file(path)
    assert first.version == hashlib.sha256(text).hexdigest()[:12]
    path.write_bytes(text + b"# a comment changes the version too\n")
    assert load_policy_file(path).version != first.version


# --- files that are refused ---


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "unknown_key.yaml",
            "policies.template_reuse.windw: unknown key (allowed: action, mode, min_recipients,"
            " window, min_tokens, similarity, containment, meaning)",
        ),
        ("unknown_top_key.yaml", "policy: unknown key (allowed: mode, policies)"),
        (
            "unknown_policy.yaml",
            "policies.follow_timming: unknown key (allowed: follow_timing, template_reuse,"
            " first_contact_pitch, burst)",
        ),
        (
            "unknown_action.yaml",
            "policies.follow_timing.action: unknown action 'delete' (use off, hold or block)",
        ),
        (
            "bad_duration.yaml",
            "policies.template_reuse.window: invalid duration 'soon' (use 90s, 10m, 1h, 3d)",
        ),
        ("zero_duration.yaml", "policies.follow_timing.window: duration must be positive"),
        ("action_true.yaml", "policies.follow_timing.action: YAML reads on/yes/true as true"),
        ("unknown_mode.yaml", "mode: unknown mode 'strict' (use enforce or shadow)"),
        ("policy_unknown_mode.yaml", "policies.template_reuse.mode: unknown mode false"),
        (
            "min_recipients_too_small.yaml",
            "policies.template_reuse.min_recipients: input should be greater than or equal to 2",
        ),
        (
            "similarity_out_of_range.yaml",
            "policies.template_reuse.similarity: input should be less than or equal to 1",
        ),
        ("missing_action.yaml", "policies.template_reuse.action: required"),
        ("policy_not_a_mapping.yaml", "policies.follow_timing: expected a mapping"),
        (
            "not_a_mapping.yaml",
            "top level: expected a mapping with keys mode, policies, got a list",
        ),
        ("syntax_error.yaml", "line 5, column 4: invalid YAML"),
        ("duplicate_key.yaml", "line 4, column 3: invalid YAML: duplicate key 'template_reuse'"),
        ("empty.yaml", "the policy file is empty"),
        (
            "pitch_unknown_key.yaml",
            "policies.first_contact_pitch.allowed_domain: unknown key (allowed: action, mode,"
            " match, allowed_domains, phrases, extra_phrases)",
        ),
        (
            "pitch_bad_domain.yaml",
            "policies.first_contact_pitch.allowed_domains: 'https://example.com/page' is not a"
            " domain name (write it as example.com)",
        ),
        (
            "pitch_empty_phrase.yaml",
            "policies.first_contact_pitch.extra_phrases: phrases need words, got ''",
        ),
        (
            "pitch_unknown_match.yaml",
            "policies.first_contact_pitch.match: input should be 'link_or_cta', 'link_and_cta',"
            " 'link' or 'cta' (got 'links')",
        ),
        (
            "burst_zero_max.yaml",
            "policies.burst.max_first_contacts: input should be greater than or equal to 1",
        ),
        (
            "burst_bad_window.yaml",
            "policies.burst.window: invalid duration 'hourly' (use 90s, 10m, 1h, 3d)",
        ),
    ],
)
def test_broken_policy_files_are_refused_naming_the_key(fixture: str, expected: str):
    path = FIXTURES / fixture
    with pytest.raises(PolicyFileError) as caught:
        load_policy_file(path)
    assert expected in str(caught.value)
    assert caught.value.path == path


def test_every_problem_is_reported_on_its_own_line():
    with pytest.raises(PolicyFileError) as caught:
        load_policy_file(FIXTURES / "several_problems.yaml")
    assert str(caught.value).splitlines() == [
        "policies.follow_timing.action: unknown action 'stop' (use off, hold or block)",
        "policies.follow_timing.window: invalid duration 'later' (use 90s, 10m, 1h, 3d)",
        "policies.template_reuse.min_recipient: unknown key (allowed: action, mode,"
        " min_recipients, window, min_tokens, similarity, containment, meaning)",
    ]
    assert len(caught.value.problems) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("policies: {template_reuse: {action: hold, min_recipients: '3'}}", "valid integer"),
        ("policies: {template_reuse: {action: hold, min_recipients: true}}", "valid integer"),
        ("policies: {template_reuse: {action: hold, similarity: 0}}", "greater than 0"),
        ("policies: {template_reuse: {action: hold, min_tokens: 0}}", "greater than or equal"),
        ("policies: [follow_timing]", "policies: expected a mapping, got a list"),
        ("policies: {follow_timing: {action: hold, window: 1.5}}", "needs a unit, got 1.5"),
        ("off: true", "top level: key False is not text (quote it)"),
        ("policies: {follow_timing: {action: hold, 1: x}}", "policies.follow_timing: key 1 is"),
        ("mode: shadow\n---\nmode: enforce\n", "line 2, column 1: invalid YAML"),
    ],
)
def test_wrong_types_and_ranges_are_refused(text: str, expected: str):
    with pytest.raises(PolicyFileError) as caught:
        parse_policies(text)
    assert expected in str(caught.value)


def test_a_policy_left_empty_asks_for_its_action():
    # `template_reuse:` with every line under it commented out is YAML null.
    with pytest.raises(PolicyFileError) as caught:
        parse_policies("policies:\n  template_reuse:\n    # action: hold\n")
    assert str(caught.value) == "policies.template_reuse.action: required"


def test_missing_and_unreadable_files_name_the_path(tmp_path: Path):
    with pytest.raises(PolicyFileError) as caught:
        load_policy_file(tmp_path / "absent.yaml")
    assert str(caught.value) == f"{tmp_path / 'absent.yaml'}: no such file"
    with pytest.raises(PolicyFileError) as caught:
        load_policy_file(tmp_path)  # a directory
    assert str(caught.value).startswith(f"{tmp_path}: cannot read")


def test_loaded_config_is_immutable():
    config = load_policy_file(DEFAULT_POLICY_FILE).config
    with pytest.raises(ValidationError):
        config.mode = Mode.SHADOW  # type: ignore[misc]
