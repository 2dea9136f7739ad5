"""Tokens signed by digest.subscriptions.tokens (its signer made once, HMAC in one call) are byte for
byte what itsdangerous's own URLSafeTimedSerializer signs, and read back with it."""

from __future__ import annotations

from itsdangerous import Serializer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode

from digest.subscriptions import tokens


class _Plain(URLSafeTimedSerializer):
    """itsdangerous's own serializer and signer, with the project's payload (no zlib)."""

    def dump_payload(self, obj):
        return base64_encode(Serializer.dump_payload(self, obj))


def test_signed_as_itsdangerous_signs(monkeypatch):
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: 1_765_000_000.25)
    secrets = ("first-secret-" + "a" * 32, ("newer-" + "b" * 32, "older-" + "c" * 32))
    for secret in secrets:
        keys = secret if isinstance(secret, str) else list(reversed(secret))
        for purpose in tokens.PURPOSES:
            for payload in ({"p": 7, "v": -1}, {"d": 123456789}, {}):
                made = [tokens.make(secret, purpose, sid, **payload) for sid in (1, 42, 2**40)]
                plain = _Plain(keys, salt=f"digest.{purpose}")
                assert made == [plain.dumps({"s": sid, **payload}) for sid in (1, 42, 2**40)]
                assert [tokens.read(secret, purpose, t, max_age=None)["s"] for t in made] == [1, 42, 2**40]


def test_a_token_of_another_secret_or_purpose_is_refused():
    token = tokens.make("one-secret-" + "a" * 32, "unsubscribe", 5)
    for secret, purpose in (("another-" + "b" * 32, "unsubscribe"), ("one-secret-" + "a" * 32, "manage")):
        try:
            tokens.read(secret, purpose, token, max_age=None)
        except tokens.TokenError:
            continue
        raise AssertionError(f"accepted under {purpose}")
