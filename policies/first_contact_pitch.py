"""first_contact_pitch: revenue before the relationship — the first message to someone who
has never written to the account carries a link or a call to action ("check out", "book a
call", "link in bio").

The detector is pure: `PitchDetector.inspect` finds the links and call-to-action phrases
of a text; the policy asks the store (`Signals.contact_history`) whether the DM is a first
contact: the recipient never wrote to the account and no DM of the account has reached
them. Held and blocked attempts reach nobody, so a tool's follow-up to a held pitch ("just
bumping this") or a reworded retry after a block is judged as a first message again; a
forwarded DM (also in shadow mode) ends the first contact. Approving a held pitch does not
(yet): the recipient's next DM is judged again, the stricter side.

Robustness, in scope: case, NFKC (fullwidth and styled letters), invisible characters
(zero-width, bidi, combining marks: template_reuse's `clean`), Cyrillic/Greek look-alike
letters inside Latin words ("check out" with a Cyrillic c and o), HTML entities, and
obfuscated links: `hxxp://`, `h**p://`, `rocketly[.]com`, `rocketly(dot)com`,
`rocketly dot com`, `rocketly . com`.
Out of scope: digits for letters ("ch3ck 0ut"), letters spaced apart ("c h e c k"),
links only in attachments or link cards, and calls to action in languages without
configured phrases (add them with `extra_phrases`). E-mail addresses are not links.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator

from policies.model import OutboundMessage, Signals
from policies.schema import PolicyConfig, custom_error
from policies.template_reuse import clean


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
                raise custom_error("phrase", f"phrases need words, got {item!r}")
    return value


def _validate_domains(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    domains = []
    for item in value:
        domain = item.strip().lower().removeprefix("www.") if isinstance(item, str) else ""
        if not _DOMAIN_SHAPE.fullmatch(domain):
            raise custom_error("domain", f"{item!r} is not a domain name (write it as example.com)")
        domains.append(domain)
    return domains


Phrases = Annotated[tuple[str, ...], BeforeValidator(_validate_phrases)]
Domains = Annotated[tuple[str, ...], BeforeValidator(_validate_domains)]


class FirstContactPitchConfig(PolicyConfig):
    match: PitchMatch = PitchMatch.LINK_OR_CTA
    # Links to these domains (and their subdomains) are not counted as links.
    allowed_domains: Domains = ()
    # None: the shipped list (DEFAULT_PHRASES below).
    phrases: Phrases | None = None
    extra_phrases: Phrases = ()


# The shipped calls to action, measured on the SMS Spam Collection (bench/pitch_detection.py).
# Phrases match whole words after normalising (`normalise_phrase`), so "sign up" matches
# "Sign-up!" and "SIGN UP" but not "design update".
DEFAULT_PHRASES: tuple[str, ...] = (
    # come along
    "join us",
    "join our",
    "join the waitlist",
    "sign up",
    "signup",
    "register now",
    "register here",
    "subscribe to",
    # look at this
    "check out",
    "check it out",
    "click here",
    "click the link",
    "click below",
    "click on the link",
    "tap the link",
    "visit our",
    "visit my",
    "link in bio",
    "link in my bio",
    "learn more",
    "find out more",
    # talk business
    "book a call",
    "book a demo",
    "book a meeting",
    "book your",
    "schedule a call",
    "schedule a demo",
    "schedule a meeting",
    "hop on a call",
    "jump on a call",
    "quick call",
    "free consultation",
    "free trial",
    "get started",
    # buy
    "use my code",
    "use code",
    "promo code",
    "discount code",
    "coupon code",
    "shop now",
    "buy now",
    "order now",
    "claim your",
    "limited time offer",
    "apply now",
    # move elsewhere
    "connect with me on",
    "follow me on",
    "follow us on",
    "add me on",
    "find me on",
    "message me on",
    "dm me for",
    "text me on whatsapp",
    # bulk-marketing footers and prize hooks (zero ham in the SMS corpus)
    "to claim",
    "free entry",
    "more info",
    "log onto",
    "reply yes",
    "reply stop",
    "send stop",
    "text stop",
    "unsubscribe",
    "opt out",
)

# Bare domains (no scheme, no www.) need one of these TLDs; TLDs that are also English
# words (in, it, me, us, to, be) would turn "sorry da thangam.it's" into a link.
_TLDS = (
    "com|net|org|info|biz|io|co|uk|de|fr|eu|ly|gl|gg|tv|app|dev|xyz|ai|ru|au|ca|"
    "es|nl|br|link|shop|store|online|site|club|live|page|website|example"
)
# Spaced or spelt-out dots are read only before the usual commercial TLDs: "ok. in 5 min"
# must not become the domain ok.in.
_SPACED_TLDS = "com|net|org|info|biz|io|co|app|dev|xyz|ai|ly|shop|store|online|site|example"

_SCHEME_RE = re.compile(r"\bh(?:tt|xx|\*\*)p(s?)\s*[:;]\s*/\s*/\s*")
_BRACKET_DOT_RE = re.compile(r"\s*[\[({<]\s*(?:dot|\.)\s*[\])}>]\s*")
_WORD_DOT_RE = re.compile(rf"(?<=[a-z0-9])\s+dot\s+(?=(?:{_SPACED_TLDS})\b)")
_SPACED_DOT_RE = re.compile(rf"(?<=[a-z0-9])(?:\s+\.\s*|\.\s+)(?=(?:{_SPACED_TLDS})(?:[/\s]|$))")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL_RE = re.compile(r"(?:https?://|www\.)[^\s<>\"'`]+")
_DOMAIN_RE = re.compile(rf"(?<![\w@.-])(?:[a-z0-9-]+\.)+(?:{_TLDS})\b(?![\w-])(?:/\S*)?")
_HOST_RE = re.compile(r"(?:https?://)?([^/?#:\s]+)")
_WORD_RE = re.compile(r"\w+")

# Cyrillic and Greek letters that look like Latin ones, used inside Latin words to slip
# past filters. Only words mixing them with ASCII letters are mapped, so Russian or Greek
# text is left alone.
_LOOKALIKES = str.maketrans(
    # Cyrillic a b e k m h o p c t y x i j s d h q w, Greek a b e i k v o p t u x
    "\u0430\u0432\u0435\u043a\u043c\u043d\u043e\u0440\u0441\u0442\u0443\u0445\u0456\u0458\u0455"
    "\u0501\u04bb\u051b\u051d\u03b1\u03b2\u03b5\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7",
    "abekmhopctyxijsdhqwabeikvoptux",
)
_MIXED_WORD_RE = re.compile(r"\S*[a-z]\S*")


def _unmask_lookalikes(text: str) -> str:
    if text.isascii():
        return text
    return _MIXED_WORD_RE.sub(
        lambda m: m.group(0).translate(_LOOKALIKES) if not m.group(0).isascii() else m.group(0),
        text,
    )


def readable(text: str) -> str:
    """`text` cleaned (template_reuse.clean), look-alike letters in Latin words mapped to
    Latin, and obfuscated links written plainly."""
    text = _unmask_lookalikes(clean(text))
    text = _SCHEME_RE.sub(r"http\1://", text)
    if "dot" in text or "." in text:
        text = _BRACKET_DOT_RE.sub(".", text)
        text = _WORD_DOT_RE.sub(".", text)
        text = _SPACED_DOT_RE.sub(".", text)
    return text


def normalise_phrase(text: str) -> str:
    """Words only, single-spaced, with a space at each end so `in` finds whole words."""
    return " " + " ".join(_WORD_RE.findall(_unmask_lookalikes(clean(text)))) + " "


@dataclass(frozen=True)
class Findings:
    """What in a text makes it look like a pitch."""

    domains: tuple[str, ...]  # hosts of links not on the allow-list, in text order
    phrases: tuple[str, ...]  # calls to action found, as configured, in text order


def link_hosts(text: str) -> list[str]:
    """Hosts of every link in `text` (already `readable`), in order, without `www.`."""
    if "." not in text:
        return []
    text = _EMAIL_RE.sub(" ", text) if "@" in text else text
    found: list[tuple[int, str]] = []
    for pattern in (_URL_RE, _DOMAIN_RE):
        for m in pattern.finditer(text):
            host = _HOST_RE.match(m.group(0))
            name = host.group(1).rstrip(".,;:!?)]}").removeprefix("www.") if host else ""
            if "." in name:
                found.append((m.start(), name))
        # Blanked, not removed: a URL's host is not found again as a bare domain, and the
        # offsets of later matches stay comparable.
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return [host for _, host in sorted(found)]


class PitchDetector:
    """Links and calls to action in a text, by a fixed configuration."""

    def __init__(self, phrases: Iterable[str], allowed_domains: Iterable[str] = ()) -> None:
        self.phrases: dict[str, str] = {}  # normalised -> as configured
        for phrase in phrases:
            key = normalise_phrase(phrase)
            if key.strip():
                self.phrases.setdefault(key, phrase)
        self.allowed = tuple(allowed_domains)

    def allowed_host(self, host: str) -> bool:
        return any(host == d or host.endswith("." + d) for d in self.allowed)

    def inspect(self, text: str) -> Findings:
        plain = readable(text)
        domains = [h for h in link_hosts(plain) if not self.allowed_host(h)]
        words = " " + " ".join(_WORD_RE.findall(plain)) + " "
        found = sorted(
            (at, phrase) for key, phrase in self.phrases.items() if (at := words.find(key)) >= 0
        )
        return Findings(tuple(dict.fromkeys(domains)), tuple(p for _, p in found))


def is_pitch(findings: Findings, match: PitchMatch) -> bool:
    link, cta = bool(findings.domains), bool(findings.phrases)
    if match is PitchMatch.LINK_AND_CTA:
        return link and cta
    if match is PitchMatch.LINK:
        return link
    if match is PitchMatch.CTA:
        return cta
    return link or cta


def describe(findings: Findings) -> str:
    """`a link (rocketly.example) and a call to action ("join us")`."""
    parts = []
    if findings.domains:
        parts.append(f"a link ({', '.join(findings.domains[:3])})")
    if findings.phrases:
        quoted = ", ".join(f'"{p}"' for p in findings.phrases[:3])
        parts.append(f"a call to action ({quoted})")
    return " and ".join(parts)


class FirstContactPitch:
    """Matches when the DM is the account's first contact with a recipient (no DM of the
    account has reached them, and they never wrote to it) and carries a link or a call to
    action (`match`)."""

    name = "first_contact_pitch"
    # The proxy tells the store which DMs reached their recipients while this is on
    # (Engine.tracks_contacts): a forwarded DM ends the recipient's first contact.
    tracks_contacts = True
    config_model = FirstContactPitchConfig

    def __init__(self, config: FirstContactPitchConfig) -> None:
        self.config = config
        phrases = DEFAULT_PHRASES if config.phrases is None else config.phrases
        self.detector = PitchDetector((*phrases, *config.extra_phrases), config.allowed_domains)

    async def evaluate(
        self, message: OutboundMessage, signals: Signals, now: datetime
    ) -> str | None:
        # Asked for every DM, pitch or not: the store records every attempt (burst counts
        # them), and the proxy marks the forwarded ones as having reached the recipient.
        history = await signals.contact_history(
            message.platform, message.account, message.recipients, now, since=now, cap=0
        )
        if not history.first_contacts or message.opaque:  # encrypted: no text to read
            return None
        findings = self.detector.inspect(message.text)
        if not is_pitch(findings, self.config.match):
            return None
        first, *others = history.first_contacts
        who = first
        if others:
            who += f" (and {len(others)} other recipient{'s' if len(others) > 1 else ''})"
        return f"first message to {who} carries {describe(findings)}"
