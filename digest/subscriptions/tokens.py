"""Signed tokens for every link a subscriber clicks (itsdangerous).

A token binds a subscriber id and a purpose (the salt), so a token made for one purpose is refused
for another. Confirmation links expire; unsubscribe and feed links never do (an old digest must still work).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from itsdangerous import BadData, Serializer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode

PURPOSES = ("confirm", "manage", "unsubscribe", "archive", "feedback", "feed")
# A feed URL sits in a feed reader for years: it never expires, and unsubscribing ends it (410).
MAX_AGE = {"confirm": 3 * 86400, "manage": 180 * 86400, "unsubscribe": None, "archive": None,
           "feedback": 90 * 86400,
           "feed": None}


class TokenError(Exception):
    """The token is forged, expired, made for another purpose, or holds what no link of ours holds."""


_MAX = 2**63  # ids and times fit a signed 64-bit column on every backend


def _whole(low: int):
    return lambda v: type(v) is int and low <= v < _MAX  # `type`: a bool is not a number here


# What a payload may hold: the subscriber (s), a delivery (d), a paper (p), a vote (v), when it was made
# in ms (at). Checked for every token, however well signed, before any value reaches a query.
FIELDS = {"s": _whole(1), "d": _whole(1), "p": _whole(1), "at": _whole(0),
          "v": lambda v: type(v) is int and v in (1, -1)}


def make(secret: Secrets, purpose: str, subscriber_id: int, **extra: Any) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return _serializer(secret, purpose).dumps({"s": subscriber_id, **extra})


class _Serializer(URLSafeTimedSerializer):
    """Without zlib: a payload is a few ids, so compressing only costs time (a digest signs ~25
    links). Tokens made either way read back the same."""

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(Serializer.dump_payload(self, obj))


Secrets = str | Sequence[str]  # one secret, or several: the first signs, every one verifies


def _serializer(secret: Secrets, purpose: str) -> URLSafeTimedSerializer:
    return _keyed(secret if isinstance(secret, str) else tuple(secret), purpose)


@lru_cache(maxsize=64)
def _keyed(secret: str | tuple[str, ...], purpose: str) -> URLSafeTimedSerializer:
    # itsdangerous rotates keys newest last: the last signs, all verify
    keys = secret if isinstance(secret, str) else list(reversed(secret))
    return _Serializer(keys, salt=f"digest.{purpose}")


def signed_at(secret: Secrets, purpose: str, token: str) -> datetime:
    """When a token (already accepted by `read`) was signed."""
    try:
        return _serializer(secret, purpose).loads(token, return_timestamp=True)[1]
    except BadData as err:
        raise TokenError(str(err)) from None


def read(secret: Secrets, purpose: str, token: str, max_age: int | None = -1) -> dict[str, Any]:
    """Return the payload ({"s": subscriber_id, ...}) or raise TokenError. With several secrets, a token
    signed with any of them is accepted."""
    age = MAX_AGE.get(purpose) if max_age == -1 else max_age
    try:
        data = _serializer(secret, purpose).loads(token, max_age=age)
    except BadData as err:
        raise TokenError(str(err)) from None
    if not isinstance(data, dict) or "s" not in data or not all(
            k in FIELDS and FIELDS[k](v) for k, v in data.items()):
        raise TokenError("malformed token")
    return data
