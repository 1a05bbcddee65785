"""Campaigns: the copies of one template a sending account sent to many recipients.

A campaign is what `template_reuse` matched the DM to: its `PolicyMatch.template_id`, the
store's id of the campaign (spintax, look-alike letters and reworded copies included).
A DM held by template_reuse without one (an older policy file's verdict replayed, a
store that did not answer with an id) falls back to its normalised text from the same
account. The hold stores the id (`holds.template_id`).
"""

from __future__ import annotations

import hashlib
import json
import re

from policies.model import Decision, OutboundMessage
from policies.template_reuse import normalise

TEMPLATE_POLICY = "template_reuse"
_WORD = re.compile(r"\S+|\s+")


def template_id_for(message: OutboundMessage, decision: Decision) -> str | None:
    """The campaign of a DM the template_reuse policy matched; None otherwise."""
    matches = [m for m in decision.matches if m.policy == TEMPLATE_POLICY]
    if not matches:
        return None
    found = next((m.template_id for m in matches if m.template_id), None)
    if found is not None:
        return f"t{found}"
    normalised = normalise(message.text, message.recipient_names)
    material = json.dumps([message.platform, message.account, normalised]).encode()
    return hashlib.sha256(material).hexdigest()[:24]


def fixed_and_varying(text: str, others: list[str]) -> list[tuple[str, bool]]:
    """`text` cut into runs, each marked varying (True) or fixed (False): a word is fixed
    when most other copies of the campaign contain it too. White space joins its
    neighbours. Without other copies, everything is fixed."""
    if not others:
        return [(text, False)]
    sets = [set(o.casefold().split()) for o in others]
    need = max(1, (len(sets) + 1) // 2)
    runs: list[tuple[str, bool]] = []
    for piece in _WORD.findall(text):
        varying = False if piece.isspace() else sum(piece.casefold() in s for s in sets) < need
        if piece.isspace() and runs:
            varying = runs[-1][1]
        if runs and runs[-1][1] == varying:
            runs[-1] = (runs[-1][0] + piece, varying)
        else:
            runs.append((piece, varying))
    return runs
