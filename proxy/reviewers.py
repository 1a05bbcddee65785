"""Who may review: the review tokens (from DMGATE_REVIEW_TOKENS, or one generated on first
start and stored as a digest), each with the name a decision is recorded under."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys

from pydantic import SecretStr

from proxy.clock import Clock
from proxy.store.tokens import ReviewTokens


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Reviewers:
    def __init__(
        self, configured: list[tuple[str, SecretStr]], stored: ReviewTokens, clock: Clock
    ) -> None:
        self._configured = configured
        self._stored = stored
        self._clock = clock
        self._tokens: list[tuple[str, str]] = []  # (name, sha256 of the token)

    async def load(self) -> None:
        """The configured tokens; without any, the stored ones, or a new one generated
        (and printed once, to the operator's terminal, never to the structured log)."""
        if self._configured:
            self._tokens = [(n, token_digest(t.get_secret_value())) for n, t in self._configured]
            return
        if not await self._stored.all():
            token = secrets.token_urlsafe(32)
            if await self._stored.add("generated", token_digest(token), self._clock.now()):
                print(
                    "dmgate: no DMGATE_REVIEW_TOKENS set; generated a review API token "
                    f"(shown only now, store it safely):\n\n    {token}\n",
                    file=sys.stderr,
                    flush=True,
                )
        self._tokens = await self._stored.all()

    def name_for(self, token: str) -> str | None:
        """The token's name, or None. Compared against every token, always, so timing
        says nothing about which matched."""
        try:
            digest = token_digest(token)
        except UnicodeEncodeError:  # not UTF-8: no token dmgate knows
            return None
        name = None
        for candidate, expected in self._tokens:
            if hmac.compare_digest(digest, expected):
                name = candidate
        return name

    def digests(self, name: str) -> set[str]:
        """The sha256 digests of `name`'s current tokens (a review inbox session ends when
        its token is no longer among them)."""
        return {digest for candidate, digest in self._tokens if candidate == name}
