"""What every policy's section of the policy file is made of: durations, actions, modes,
and the keys every policy has. Each policy module declares its own section on top of
`PolicyConfig`; `policies.config` assembles the file from them."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

from policies.model import Action, Mode

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


def custom_error(kind: str, message: str) -> PydanticCustomError:
    # The message goes through a context slot so braces in user input are not templated.
    return PydanticCustomError(kind, "{message}", {"message": message})


# A policy's window longer than a year is a mistake (`24d` for `24h`? a stray zero), and
# beyond ~2.7 million years it broke every decision (OverflowError: every DM answered 503).
MAX_POLICY_DURATION = timedelta(days=366)


def _validate_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):  # built in Python rather than read from a file
        if value <= timedelta(0):
            raise custom_error("duration", f"duration must be positive, got {value}")
        return value
    # In the policy file a duration names its unit: YAML reads `24` as 24 seconds where
    # 24 hours was meant, and `24:00` as the number 1440 (base 60).
    if not isinstance(value, str) or not value.strip()[-1:].isalpha():
        raise custom_error("duration", f"a duration needs a unit, got {value!r} {_DURATION_HINT}")
    try:
        duration = parse_duration(value)
    except ValueError as exc:
        raise custom_error("duration", str(exc)) from None
    if duration > MAX_POLICY_DURATION:
        raise custom_error("duration", f"duration {value!r} is longer than a year (366d)")
    return duration


Duration = Annotated[timedelta, BeforeValidator(_validate_duration)]
"""A positive timedelta of at most a year read from `90s`, `10m`, `1h`, `3d` (pydantic
field type)."""

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
        raise custom_error(
            "action",
            "YAML reads on/yes/true as true, which is not an action (use off, hold or block)",
        )
    if isinstance(value, str) and value in PolicyAction._value2member_map_:
        return PolicyAction(value)
    raise custom_error("action", f"unknown action {value!r} (use off, hold or block)")


def _validate_mode(value: Any) -> Mode:
    if isinstance(value, str) and value in Mode._value2member_map_:
        return Mode(value)
    if isinstance(value, bool):  # `mode: off` arrives as False
        shown = f"{str(value).lower()} (YAML reads off/no/on/yes as booleans)"
    else:
        shown = repr(value)
    raise custom_error("mode", f"unknown mode {shown} (use enforce or shadow)")


def none_as_empty(value: Any) -> Any:
    # `template_reuse:` with every line under it commented out is YAML null; treat it as an
    # empty mapping so the message says which key is missing rather than "not a mapping".
    return {} if value is None else value


PolicyActionField = Annotated[PolicyAction, BeforeValidator(_validate_action)]
ModeField = Annotated[Mode, BeforeValidator(_validate_mode)]

# --- the schema ----------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyConfig(Strict):
    """Keys every policy has."""

    action: PolicyActionField
    mode: ModeField | None = None  # None: the file's global mode
