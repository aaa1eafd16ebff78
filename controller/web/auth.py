"""Who is asking: bearer tokens configured as hashes, their roles, and the forms' CSRF tokens.

A token is a random string handed to a person or a system once (``retrainctl console token``);
``controller.yaml`` keeps only its SHA-256 with a name and a role. The token has 256 bits of
entropy, so a plain hash is enough (a slow KDF protects guessable passwords, not random keys).

- ``viewer`` reads; ``owner`` also approves, vetoes and checks the models of its team; ``admin``
  acts on every model. Each action is recorded under the token's name.
- With no tokens configured the console is read-only and open; with tokens, every page and API
  call needs one (401 without), and an action outside the token's role is refused (403).
- The API takes ``Authorization: Bearer <token>``. The pages keep the token in an HttpOnly,
  SameSite=Strict cookie, and every form carries a CSRF token derived from it (an HMAC a
  third-party page cannot compute), checked on each POST.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from controller.config import ConsoleToken

COOKIE = "retrain_console"
TOKEN_PREFIX = "rc_"
ROLES = ("viewer", "owner", "admin")


@dataclass(frozen=True)
class Identity:
    """The holder of a valid token: recorded as the author of what it does."""

    name: str
    role: str
    team: str | None = None

    def may_act_on(self, team: str | None) -> bool:
        """Whether this token may approve, veto or check a model of ``team``."""
        if self.role == "admin":
            return True
        return self.role == "owner" and team is not None and team == self.team


def new_token() -> tuple[str, str]:
    """A fresh token and its hash (the hash goes in ``controller.yaml``, the token to its holder)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenBook:
    """The configured tokens, looked up by the hash of what a request presents."""

    def __init__(self, tokens: Sequence[ConsoleToken]) -> None:
        self._tokens = list(tokens)

    @property
    def read_only(self) -> bool:
        return not self._tokens

    def identify(self, presented: str | None) -> Identity | None:
        if not presented:
            return None
        digest = token_hash(presented)
        found = None
        for t in self._tokens:  # every entry compared in constant time: the loop leaks nothing
            if hmac.compare_digest(digest, t.sha256):
                found = Identity(t.name, t.role, t.team)
        return found


def csrf_token(token: str) -> str:
    """The CSRF token of the forms shown to the holder of ``token``."""
    return hmac.new(token.encode(), b"retrain-console-csrf", hashlib.sha256).hexdigest()


def csrf_ok(token: str | None, presented: str | None) -> bool:
    return bool(token and presented) and hmac.compare_digest(csrf_token(str(token)), str(presented))


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
