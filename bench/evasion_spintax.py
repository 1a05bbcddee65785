"""A seeded generator of spintax campaigns as DM-automation suites send them, for
bench/evasion.py: 3-6 slots of 2-4 options, merge fields from the marketer's CRM (first
name, company, role, city), shortener or UTM links, and on top the disguises: emoji,
zero-width characters, look-alike letters in 1-3 words, shuffled sentences."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

# Templates as a marketer writes them. {a|b|c} is a slot; [first_name] etc. merge fields.
TEMPLATES: list[str] = [
    "{Hi|Hey|Hello} [first_name], {loved|enjoyed|really liked} your {post|thread|update} about "
    "[company]. We help {teams|companies} like yours cut cloud costs by 30%. "
    "{Worth a chat|Open to a quick call|Fancy a look}? [link]",
    "{Hey|Hi} [first_name]! As a [role] at [company] you {probably|likely} spend hours on "
    "reporting. Our tool {automates|handles} it in minutes. {Free trial|Try it free} here: [link]",
    "{Hello|Hi|Greetings} [first_name], I {noticed|saw} you're based in [city]. We're hosting a "
    "{free|complimentary} {workshop|masterclass} for [role]s next week. {Save your "
    "seat|Join us}: [link]",
    "{Hi|Hey} [first_name], {quick question|one quick thing}: is [company] still "
    "{looking for|hiring} "
    "{developers|engineers}? We have {vetted|pre-screened} seniors ready to start. [link]",
    "[first_name], {congrats on|well done on|big congrats on} the growth at [company]! "
    "{I'd love to|Would love to|Let me} show you how we {doubled|tripled} leads for "
    "similar {brands|businesses}. [link]",
    "{Hi|Hey|Yo} [first_name], {thanks for|appreciate} the {connection|follow}! I'm "
    "{building|running} "
    "a community for [role]s in [city]. {Come join|Would love to have you}: [link]",
    "{Hello|Hi} [first_name], {our|my} {agency|studio} {redesigns|rebuilds} websites for "
    "{startups|companies} like [company] in {two|three} weeks. {See examples|Portfolio}: [link]",
    "{Hi|Hey} [first_name], {I help|we help} [role]s {land|win} {more clients|bigger clients} "
    "with {LinkedIn|cold email} {outreach|campaigns}. {Interested|Curious}? [link]",
    "{Dear|Hi|Hello} [first_name], {I came across|I found} your profile and {was "
    "impressed|loved it}. "
    "We're {offering|giving} {free|no-cost} {SEO audits|site audits} to [city] businesses. [link]",
    "{Hey|Hi} [first_name], {quick one|just a quick note}: our {app|platform} {saves|frees up} "
    "[role]s {5|10} hours a week on {scheduling|admin}. {Happy to|Glad to} {show "
    "you|demo it}. [link]",
    "{Hi|Hello} [first_name], {we're|I'm} {launching|opening} a {beta|pilot} for [company]-sized "
    "{teams|orgs} and {you'd be|you are} a {great|perfect} fit. {Details|More info} here: [link]",
    "{Hey|Hi|Hello} [first_name]! {Big fan|Huge fan} of [company]. {Would you|Could you} "
    "be open to "
    "a {partnership|collab} with {our brand|us}? {We pay well|Paid, of course}. [link]",
    "{Hi|Hey} [first_name], {saw|noticed} you're a [role]. {Our|This} {course|program} "
    "{teaches|shows} "
    "[role]s to {double|grow} their {income|rates}. {Enrolment closes Friday|Last seats}: [link]",
    "{Hello|Hi} [first_name], {I run|we run} {investor|founder} {dinners|meetups} in [city] every "
    "month. {Would you like|Want} an {invite|invitation} to the next one? [link]",
    "{Hi|Hey} [first_name], {hope you're well|hope all is good}! We {just released|launched} a "
    "{CRM|tool} built for [company]-type {teams|businesses}. {Check it out|Take a look}: [link]",
]

FIRST = [
    "Anna",
    "Ben",
    "Carla",
    "Dmitri",
    "Elena",
    "Farah",
    "George",
    "Hana",
    "Ivan",
    "Julia",
    "Kofi",
    "Lena",
    "Marco",
    "Nina",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
]
COMPANY = [
    "Acme",
    "Northwind",
    "Bluepeak",
    "Tidewater",
    "Kestrel Labs",
    "Orbit",
    "Lumen",
    "Pinecrest",
    "Harbor Health",
    "Quill",
    "Brightside",
    "Ferrous",
]
ROLE = [
    "founder",
    "product manager",
    "CTO",
    "designer",
    "marketing lead",
    "data engineer",
    "recruiter",
    "consultant",
]
CITY = ["Austin", "Berlin", "Lisbon", "Toronto", "Nairobi", "Melbourne", "Dublin", "Denver"]
LINKS = [
    "https://bit.ly/{r}",
    "https://tinyurl.com/{r}",
    "https://growfast.studio/p?utm_source=dm&uid={r}",
    "lnkd.in/{r}",
    "https://xn--80ak6aa92e.com/{r}",
    "go.acmecloud.app/{r}",
]
EMOJI = ["🚀", "👋", "🙌", "🔥", "✨", "💡", "😊", "📈"]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
# Latin → Cyrillic/Greek look-alikes
LOOKALIKE = {
    "a": "\u0430",
    "e": "\u0435",
    "o": "\u043e",
    "p": "\u0440",
    "c": "\u0441",
    "x": "\u0445",
    "i": "\u0456",
    "y": "\u0443",
    "A": "\u0391",
    "E": "\u0395",
    "O": "\u039f",
    "H": "\u0397",
    "T": "\u03a4",
}

VARIANTS = ("merge_only", "spintax", "emoji", "disguised", "shuffled")
_SLOT = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Recipient:
    id: str
    first_name: str
    company: str
    role: str
    city: str


def recipients(rnd: random.Random, n: int, start: int) -> list[Recipient]:
    return [
        Recipient(
            str(start + i),
            rnd.choice(FIRST),
            rnd.choice(COMPANY),
            rnd.choice(ROLE),
            rnd.choice(CITY),
        )
        for i in range(n)
    ]


def _spin(template: str, rnd: random.Random, spin: bool) -> str:
    return _SLOT.sub(
        lambda m: (rnd.choice if spin else lambda o: o[0])(m.group(1).split("|")), template
    )


def _disguise_words(text: str, rnd: random.Random) -> str:
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) > 3 and any(c in LOOKALIKE for c in w)]
    for i in rnd.sample(candidates, min(len(candidates), rnd.randint(1, 3))):
        word = list(words[i])
        spots = [j for j, c in enumerate(word) if c in LOOKALIKE]
        for j in rnd.sample(spots, min(len(spots), rnd.randint(1, 2))):
            word[j] = LOOKALIKE[word[j]]
        pos = rnd.randrange(1, len(word))
        word.insert(pos, rnd.choice(ZERO_WIDTH))
        words[i] = "".join(word)
    return " ".join(words)


def _shuffle_sentences(text: str, rnd: random.Random) -> str:
    parts = re.split(r"(?<=[.!?])\s+", text)
    head, tail = parts[:-1], parts[-1:]  # the link stays last, as the tools do
    rnd.shuffle(head)
    return " ".join(head + tail)


def copy(template: str, variant: str, who: Recipient, rnd: random.Random) -> str:
    """One DM of `template` to `who`, built as `variant` builds it (each variant adds its
    disguise to the previous ones)."""
    level = VARIANTS.index(variant)
    text = _spin(template, rnd, spin=level >= 1)
    link = rnd.choice(LINKS).format(r=f"{rnd.getrandbits(40):x}")
    for field, value in (
        ("first_name", who.first_name),
        ("company", who.company),
        ("role", who.role),
        ("city", who.city),
        ("link", link),
    ):
        text = text.replace(f"[{field}]", value)
    if level >= 4:
        text = _shuffle_sentences(text, rnd)
    if level >= 2:
        words = text.split(" ")
        for _ in range(rnd.randint(1, 3)):
            words.insert(rnd.randrange(len(words) + 1), rnd.choice(EMOJI))
        text = " ".join(words)
    if level >= 3:
        text = _disguise_words(text, rnd)
    return text
