"""Single-use enrolment links: only a SHA-256 of a link's random token is stored."""

from __future__ import annotations

import hashlib


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()
