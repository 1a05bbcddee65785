"""The policy file: its schema, loading, and the messages shown when it is wrong.

A policy file is refused as a whole, with one line per problem, each naming the key path
(`policies.template_reuse.window: invalid duration 'soon' (use 90s, 10m, 1h, 3d)`), so an
operator can fix every mistake in one go and the proxy keeps the policies it had.

The `policies:` section has one optional key per policy in `policies.registry`, typed by
that policy's own `config_model`.
"""

from __future__ import annotations

import hashlib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError, create_model
from pydantic_core import ErrorDetails

from policies.model import Mode
from policies.registry import POLICY_TYPES
from policies.schema import (
    ModeField,
    PolicyConfig,
    Strict,
    format_duration,
    none_as_empty,
    parse_duration,
)

__all__ = [
    "DEFAULT_POLICY_FILE",
    "LoadedPolicies",
    "PoliciesSection",
    "PolicyFile",
    "PolicyFileError",
    "format_duration",
    "load_policy_file",
    "parse_duration",
    "parse_policies",
]

DEFAULT_POLICY_FILE: Path = Path(__file__).with_name("default.yaml")


class _Section(Strict):
    """One optional key per policy; a policy absent from the file is off."""

    def get(self, name: str) -> PolicyConfig | None:
        return getattr(self, name, None)


PoliciesSection: type[_Section] = create_model(  # type: ignore[call-overload]
    "PoliciesSection",
    __base__=_Section,
    **{
        p.name: (Annotated[p.config_model | None, BeforeValidator(none_as_empty)], None)
        for p in POLICY_TYPES
    },
)


class PolicyFile(Strict):
    mode: ModeField = Mode.ENFORCE
    policies: Annotated[PoliciesSection, BeforeValidator(none_as_empty)] = PoliciesSection()


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
    if not any(config.policies.get(p.name) is not None for p in POLICY_TYPES):
        # `policies:` with every line commented out, `policies: {}`, no `policies` key:
        # dmgate would judge nothing, at start or on a reload that replaced a good file.
        # A policy meant to be off says `action: off`.
        raise PolicyFileError(
            [
                "policies: the file names no policy, so dmgate would judge nothing; "
                f"name at least one ({', '.join(p.name for p in POLICY_TYPES)})"
            ],
            path,
        )
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
