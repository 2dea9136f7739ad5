"""DKIM: a sent message verifies offline against the test key, and `h=` signs both list headers."""

from __future__ import annotations

import shutil
import subprocess

import dkim
import pytest

from digest.config import ConfigError
from digest.delivery.sender import send
from digest.mail import signing
from digest.mail.sink import SmtpSink
from tests.factories import mail_settings, planned_world

pytestmark = [pytest.mark.sqlite_only,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl for a test key")]


@pytest.fixture(scope="module")
def test_key(tmp_path_factory) -> tuple[str, bytes]:
    """A fresh 2048-bit RSA key (dkimpy's own tooling shells out to openssl the same way)."""
    d = tmp_path_factory.mktemp("dkim")
    key = d / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "PEM"], check=True,
                         capture_output=True).stdout
    public = b"".join(line for line in der.splitlines() if not line.startswith(b"-----"))
    return str(key), b"v=DKIM1; k=rsa; p=" + public


def dns_for(record: bytes):
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name.rstrip(b".") == b"digest2026._domainkey.example.org" else None

    return lookup


def tags(signature_header: bytes) -> dict[str, str]:
    value = b"".join(signature_header.split(b":", 1)[1].split()).decode()
    return dict(t.split("=", 1) for t in value.split(";") if t)


def test_sent_message_verifies_and_signs_both_list_headers(db, settings_for, test_key):
    key_file, record = test_key
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink, dkim_key_file=key_file, dkim_selector="digest2026",
                                 reply_to="editor@example.org")
        planned_world(db, settings, 1)
        assert send(db, settings).sent == 1
        raw = sink.messages[0].data

    assert raw.startswith(b"DKIM-Signature:")
    assert dkim.verify(raw, dnsfunc=dns_for(record))
    head = raw.split(b"\r\n\r\n", 1)[0]
    sig = b"DKIM-Signature:" + head.split(b"DKIM-Signature:", 1)[1].split(b"\r\nFrom:", 1)[0]
    t = tags(sig)
    assert (t["d"], t["s"], t["c"], t["a"]) == ("example.org", "digest2026", "relaxed/relaxed", "rsa-sha256")
    signed = t["h"].lower().split(":")
    for h in ("from", "to", "subject", "date", "message-id", "reply-to", "list-id", "list-unsubscribe",
              "list-unsubscribe-post", "mime-version", "content-type"):
        assert h in signed, h
    assert signed.count("from") == 2  # oversigned: a second From breaks the signature

    # any change to a signed header or the body is detected
    tampered = raw.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                           b"List-Unsubscribe-Post: List-Unsubscribe=Two-Clicks")
    assert not dkim.verify(tampered, dnsfunc=dns_for(record))
    assert not dkim.verify(raw.replace(b"From: ", b"From: Evil <x@evil.example>\r\nFrom: ", 1),
                           dnsfunc=dns_for(record))
    body_changed = raw.replace(b"quoted-printable\r\n\r\n", b"quoted-printable\r\n\r\nP.S. ", 1)
    assert body_changed != raw and not dkim.verify(body_changed, dnsfunc=dns_for(record))


def test_key_settings_are_checked_before_sending(db, settings_for, tmp_path, test_key):
    base = dict(dkim_selector="s1")
    with pytest.raises(ConfigError, match="mail.dkim_selector: required"):
        signing.from_settings(settings_for(db.url, mail={"dkim_key_file": test_key[0]}))
    with pytest.raises(ConfigError, match="mail.dkim_key_file: cannot read"):
        signing.from_settings(settings_for(db.url,
                                           mail={**base, "dkim_key_file": str(tmp_path / "missing.pem")}))
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM RSA private key"):
        signing.from_settings(settings_for(db.url,
                                           mail={**base, "dkim_key_file": str(tmp_path / "junk.pem")}))
    assert signing.from_settings(settings_for(db.url)) is None
    signer = signing.from_settings(settings_for(db.url, mail={**base, "dkim_key_file": test_key[0]}))
    assert signer is not None and signer.domain == b"localhost"  # default: the From address's domain
