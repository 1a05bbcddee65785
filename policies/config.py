"""The policy file: its schema, loading, and the messages shown when it is wrong.

A policy file is refused as a whole, with one line per problem, each naming the key path
(`policies.template_reuse.window: invalid duration 'soon' (use 90s, 10m, 1h, 3d)`), so an
operator can fix every mistake in one go and the proxy keeps the policies it had.
"""

from __future__ import annotations

import hashlib
import re
import types
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from policies.model import Action, Mode

DEFAULT_POLICY_FILE: Path = Path(__file__).with_name("default.yaml")

# --- durations -----------------------------------------------------------------------------

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"([0-9]+)([smhd]?)")
_DURATION_HINT = "(use 90s, 10m, 1h, 3d)"


def parse_duration(value: str | int) -> timedelta:
    """`90s`, `10m`, `1h`, `3d`, or a plain number of seconds, as a positive timedelta.

    Raises ValueError with a message fit to show an operator.
    """
    # bool is an int subclass: `window: yes` must not mean one second.
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value.strip())):
        seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2) or "s"]
    else:
        raise ValueError(f"invalid duration {value!r} {_DURATION_HINT}")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r} {_DURATION_HINT}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration {value!r} is too large") from None


def format_duration(value: timedelta, exact: bool = False) -> str:
    """A short human duration: `42s`, `5m`, `2h`, `3d`.

    The unit follows the magnitude (hours up to two days, so a 24h window reads `24h`).
    Rounded down unless `exact`, which falls back to a smaller unit instead (`90s`), so a
    configured window is shown as written.
    """
    seconds = max(0, int(value.total_seconds()))
    if seconds < 60:
        unit = "s"
    elif seconds < 3600:
        unit = "m"
    elif seconds < 2 * 86400:
        unit = "h"
    else:
        unit = "d"
    if exact:
        for candidate in "dhms"["dhms".index(unit) :]:
            if seconds % _UNIT_SECONDS[candidate] == 0:
                unit = candidate
                break
    return f"{seconds // _UNIT_SECONDS[unit]}{unit}"


def _custom_error(kind: str, message: str) -> PydanticCustomError:
    # The message goes through a context slot so braces in user input are not templated.
    return PydanticCustomError(kind, "{message}", {"message": message})


def _validate_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):  # built in Python rather than read from a file
        if value <= timedelta(0):
            raise _custom_error("duration", f"duration must be positive, got {value}")
        return value
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _custom_error("duration", str(exc)) from None


Duration = Annotated[timedelta, BeforeValidator(_validate_duration)]
"""A positive timedelta read from `90s`, `10m`, `1h`, `3d` or seconds (pydantic field type)."""

# --- actions and modes ---------------------------------------------------------------------


class PolicyAction(StrEnum):
    """What a policy does on a match. `off` disables the policy entirely."""

    OFF = "off"
    HOLD = "hold"
    BLOCK = "block"

    def to_action(self) -> Action | None:
        return None if self is PolicyAction.OFF else Action(self.value)


def _validate_action(value: Any) -> PolicyAction:
    # YAML 1.1 reads a bare `off` (and `no`, `false`) as False; `off` is what was meant.
    if value is False:
        return PolicyAction.OFF
    if value is True:
        raise _custom_error(
            "action",
            "YAML reads on/yes/true as true, which is not an action (use off, hold or block)",
        )
    if isinstance(value, str) and value in PolicyAction._value2member_map_:
        return PolicyAction(value)
    raise _custom_error("action", f"unknown action {value!r} (use off, hold or block)")


def _validate_mode(value: Any) -> Mode:
    if isinstance(value, str) and value in Mode._value2member_map_:
        return Mode(value)
    if isinstance(value, bool):  # `mode: off` arrives as False
        shown = f"{str(value).lower()} (YAML reads off/no/on/yes as booleans)"
    else:
        shown = repr(value)
    raise _custom_error("mode", f"unknown mode {shown} (use enforce or shadow)")


def _none_as_empty(value: Any) -> Any:
    # `template_reuse:` with every line under it commented out is YAML null; treat it as an
    # empty mapping so the message says which key is missing rather than "not a mapping".
    return {} if value is None else value


PolicyActionField = Annotated[PolicyAction, BeforeValidator(_validate_action)]
ModeField = Annotated[Mode, BeforeValidator(_validate_mode)]

# --- the schema ----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyConfig(_Strict):
    """Keys every policy has."""

    action: PolicyActionField
    mode: ModeField | None = None  # None: the file's global mode


class FollowTimingConfig(PolicyConfig):
    window: Duration = timedelta(hours=1)


class TemplateReuseConfig(PolicyConfig):
    min_recipients: int = Field(default=3, ge=2, strict=True)
    window: Duration = timedelta(hours=24)
    min_tokens: int = Field(default=6, ge=1, strict=True)
    # 0.45, not 0.5: MinHash estimates scatter (~0.06 at 64 hash values), and 0.5 loses copies
    # whose true similarity is just above it (bench/detection.py: +15 spam for +5 ham).
    similarity: float = Field(default=0.45, gt=0, le=1, strict=True)


class PitchMatch(StrEnum):
    """What makes a first message a pitch."""

    LINK_OR_CTA = "link_or_cta"
    LINK_AND_CTA = "link_and_cta"
    LINK = "link"
    CTA = "cta"


_DOMAIN_SHAPE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]{2,}")


def _validate_phrases(value: Any) -> Any:
    if isinstance(value, list):
        for item in value:
            # A phrase without a letter or digit would normalise to nothing and never match.
            if not isinstance(item, str) or not re.search(r"\w", item):
                raise _custom_error("phrase", f"phrases need words, got {item!r}")
    return value


def _validate_domains(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    domains = []
    for item in value:
        domain = item.strip().lower().removeprefix("www.") if isinstance(item, str) else ""
        if not _DOMAIN_SHAPE.fullmatch(domain):
            raise _custom_error(
                "domain", f"{item!r} is not a domain name (write it as example.com)"
            )
        domains.append(domain)
    return domains


Phrases = Annotated[tuple[str, ...], BeforeValidator(_validate_phrases)]
Domains = Annotated[tuple[str, ...], BeforeValidator(_validate_domains)]


class FirstContactPitchConfig(PolicyConfig):
    match: PitchMatch = PitchMatch.LINK_OR_CTA
    # Links to these domains (and their subdomains) are not counted as links.
    allowed_domains: Domains = ()
    # None: the shipped list (policies.first_contact_pitch.DEFAULT_PHRASES).
    phrases: Phrases | None = None
    extra_phrases: Phrases = ()


class BurstConfig(PolicyConfig):
    max_first_contacts: int = Field(default=20, ge=1, strict=True)
    window: Duration = timedelta(hours=1)


class PoliciesSection(_Strict):
    """One optional key per policy; a policy absent from the file is off.

    Each field name is a policy's `name` and its type the policy's `config_model`
    (checked by a unit test against `policies.engine.POLICY_TYPES`).
    """

    follow_timing: Annotated[FollowTimingConfig | None, BeforeValidator(_none_as_empty)] = None
    template_reuse: Annotated[TemplateReuseConfig | None, BeforeValidator(_none_as_empty)] = None
    first_contact_pitch: Annotated[
        FirstContactPitchConfig | None, BeforeValidator(_none_as_empty)
    ] = None
    burst: Annotated[BurstConfig | None, BeforeValidator(_none_as_empty)] = None

    def get(self, name: str) -> PolicyConfig | None:
        return getattr(self, name, None)


class PolicyFile(_Strict):
    mode: ModeField = Mode.ENFORCE
    policies: Annotated[PoliciesSection, BeforeValidator(_none_as_empty)] = PoliciesSection()


# --- loading -------------------------------------------------------------------------------


class PolicyFileError(Exception):
    """The policy file cannot be used. `str()` is the message for the operator: one line
    per problem, each naming the key path (or the line, for YAML syntax errors)."""

    def __init__(self, problems: list[str], path: Path | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.path = path


@dataclass(frozen=True)
class LoadedPolicies:
    """A validated policy file and where it came from."""

    config: PolicyFile
    version: str  # short sha256 of the file's bytes: tells reloads and decisions apart
    path: Path | None = None


def load_policy_file(path: str | Path) -> LoadedPolicies:
    """Read and validate a policy file. Raises PolicyFileError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PolicyFileError([f"{path}: no such file"], path) from None
    except OSError as exc:
        raise PolicyFileError([f"{path}: cannot read: {exc.strerror or exc}"], path) from None
    return parse_policies(data, path)


def parse_policies(data: bytes | str, path: Path | None = None) -> LoadedPolicies:
    """Validate policy file contents. Raises PolicyFileError."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        document = yaml.load(raw, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise PolicyFileError([_describe_yaml_error(exc)], path) from None
    except yaml.YAMLError as exc:
        raise PolicyFileError([f"invalid YAML: {exc}"], path) from None
    if document is None:
        raise PolicyFileError(["the policy file is empty (expected keys: mode, policies)"], path)
    if not isinstance(document, dict):
        raise PolicyFileError(
            [f"top level: expected a mapping with keys mode, policies, got {_kind(document)}"],
            path,
        )
    try:
        config = PolicyFile.model_validate(document)
    except ValidationError as exc:
        raise PolicyFileError([_describe_error(e) for e in exc.errors()], path) from None
    return LoadedPolicies(config, hashlib.sha256(raw).hexdigest()[:12], path)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML would silently keep the last one, so a
    second `template_reuse:` block would quietly replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: let the base class report it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    what = exc.problem or exc.context or "syntax error"
    return f"{where}invalid YAML: {what}"


def _describe_error(error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    path = ".".join(str(part) for part in loc) or "top level"
    kind, given = error["type"], error.get("input")
    if kind == "invalid_key":  # e.g. a bare `off:` used as a key is the boolean False
        path = ".".join(str(part) for part in loc[:-1]) or "top level"
        message = f"key {given!r} is not text (quote it)"
    elif kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        message = "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    elif kind == "missing":
        message = "required"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = f"expected a mapping, got {_kind(given)}"
    elif kind in ("action", "mode", "duration", "phrase", "domain"):
        message = error["msg"]  # our own messages already show the input
    else:
        message = f"{error['msg'][0].lower()}{error['msg'][1:]} (got {given!r})"
    return f"{path}: {message}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model at `loc` accepts, to suggest them next to an unknown key."""
    model: type[BaseModel] = PolicyFile
    for part in loc:
        field = model.model_fields.get(str(part))
        nested = _model_in(field.annotation) if field else None
        if nested is None:
            return []
        model = nested
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType, Annotated):
        for arg in get_args(annotation):
            if found := _model_in(arg):
                return found
    return None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    names = {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__) + (
        f" ({value!r})" if isinstance(value, str | int | float) else ""
    )
