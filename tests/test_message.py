import email
import email.policy
import re

from digest.mail.message import Envelope, build_message, make_message_id

LONG_URL = "https://digest.example.org/unsubscribe/" + "eyJzIjoxMjM0NTY3fQ.ZxYwVu" * 8


def make(**kw):
    env = dict(from_address="Trending Papers <digest@example.org>", to_address="ada@example.org",
               to_name="Ada",
               subject="3 new papers for you", message_id=make_message_id(7, "2026-11-22", "example.org"),
               list_id="Trending papers <digest.example.org>", unsubscribe_url=LONG_URL,
               unsubscribe_mailto="unsubscribe@example.org")
    env.update(kw)
    return build_message(Envelope(**env), "text part", "<p>html part</p>")


def parse(msg):
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)


def test_multipart_alternative_text_first_with_list_headers():
    m = parse(make())
    assert m.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in m.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    for h in ("Date", "Message-ID", "From", "To", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert m[h], h
    assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<digest\.7\.2026-11-22\.[0-9a-f]{16}@example\.org>", m["Message-ID"])


def test_a_message_id_is_never_made_twice():
    """Two deliveries that get the same row id (SQLite reuses a deleted one's) still differ."""
    assert make_message_id(7, "2026-11-22", "example.org") != make_message_id(7, "2026-11-22", "example.org")


def test_long_list_unsubscribe_stays_a_valid_url():
    raw = make().as_bytes().decode()
    assert "=?utf-8?" not in raw.split("List-Unsubscribe:", 1)[1].split("\n", 1)[0]
    assert f"<{LONG_URL}>" in raw
    assert (parse(make())["List-Unsubscribe"]
            == f"<{LONG_URL}>, <mailto:unsubscribe@example.org?subject=unsubscribe>")


def test_no_header_injection_and_non_ascii_is_encoded():
    m = make(subject="Hi\r\nBcc: victim@example.com", to_name="Zoë\nBcc: x@y.z")
    raw = m.as_bytes()
    assert b"\nBcc:" not in raw and b"\r\nBcc:" not in raw
    p = parse(m)
    assert p["Bcc"] is None
    assert p["Subject"] == "Hi Bcc: victim@example.com"
    assert "Zoë" in str(p["To"]) and raw.isascii()
