"""Signed tokens for every link a subscriber clicks (itsdangerous).

A token binds a subscriber id and a purpose (the salt), so a token made for one purpose is refused
for another. Confirmation links expire; unsubscribe links never do (an old digest must still work).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from itsdangerous import BadData, Serializer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode

PURPOSES = ("confirm", "manage", "unsubscribe", "archive", "feedback")
MAX_AGE = {"confirm": 3 * 86400, "manage": 180 * 86400, "unsubscribe": None, "archive": None, "feedback": 90 * 86400}


class TokenError(Exception):
    """The token is forged, expired, or made for another purpose."""


def make(secret: str, purpose: str, subscriber_id: int, **extra: Any) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return _serializer(secret, purpose).dumps({"s": subscriber_id, **extra})


class _Serializer(URLSafeTimedSerializer):
    """Without zlib: a payload is a few ids, so compressing only costs time (a digest signs ~25
    links). Tokens made either way read back the same."""

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(Serializer.dump_payload(self, obj))


@lru_cache(maxsize=64)
def _serializer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    return _Serializer(secret, salt=f"digest.{purpose}")


def signed_at(secret: str, purpose: str, token: str) -> datetime:
    """When a token (already accepted by `read`) was signed."""
    try:
        return _serializer(secret, purpose).loads(token, return_timestamp=True)[1]
    except BadData as err:
        raise TokenError(str(err)) from None


def read(secret: str, purpose: str, token: str, max_age: int | None = -1) -> dict[str, Any]:
    """Return the payload ({"s": subscriber_id, ...}) or raise TokenError."""
    age = MAX_AGE.get(purpose) if max_age == -1 else max_age
    try:
        data = _serializer(secret, purpose).loads(token, max_age=age)
    except BadData as err:
        raise TokenError(str(err)) from None
    if not isinstance(data, dict) or not isinstance(data.get("s"), int):
        raise TokenError("malformed token")
    return data
