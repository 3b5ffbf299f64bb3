"""Single-use links, for guest enrolment (GuestEnrollmentLink) and for invitations (accounts.Invitation): a link
carries a random token, and only the token's SHA-256 is stored, so a copy of the database opens nothing."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 256 random bits, 43 characters


def token_new() -> tuple[str, str]:
    """A fresh token for a link, and the hash to store."""
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    return raw, token_hash(raw)


def token_hash(raw: str | None) -> str:
    return hashlib.sha256((raw or "").encode()).hexdigest()
