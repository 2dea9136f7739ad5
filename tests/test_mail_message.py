"""The message on the wire: RFC 5322 headers, RFC 2045 quoted-printable, RFC 2047 words, list headers."""

from __future__ import annotations

import email
import email.policy
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.mail.message import Envelope, build_message, make_message_id, message_bytes, new_message_id

LONG_URL = "https://digest.example.org/unsubscribe/" + "eyJzIjoxMjM0NTY3fQ.ZxYwVu" * 8
HEADERS = ["From", "To", "Reply-To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
           "List-Unsubscribe-Post", "MIME-Version", "Content-Type"]


def env(**kw) -> Envelope:
    values = dict(from_address="Trending Papers <digest@example.org>", to_address="ada@example.org",
                  to_name="Ada",
                  subject="3 new papers for you",
                  message_id=make_message_id(7, "2026-11-22", "example.org", "0a1b2c3d"),
                  list_id="Trending papers <digest.example.org>", unsubscribe_url=LONG_URL,
                  unsubscribe_mailto="unsubscribe@example.org", reply_to="editor@example.org")
    values.update(kw)
    return Envelope(**values)


def wire(text: str = "text part\n", html: str = "<p>html part</p>\n", **kw) -> bytes:
    return message_bytes(env(**kw), text, html)


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def test_structure_and_line_limits():
    text = ("A line that is long enough to need a soft break in quoted-printable, surely, " * 5
            + "é\n.dot\nFrom me\n")
    html = "<p>" + "x=y " * 400 + "</p>\n"
    raw = wire(text, html)
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"")  # 7-bit, CRLF only
    head, body = raw.split(b"\r\n\r\n", 1)
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))  # RFC 2045 quoted-printable
    for line in head.split(b"\r\n"):
        assert len(line) <= 78 or line.startswith(b"List-Unsubscribe: <"), line
    msg = parse(raw)
    assert [name for name, _ in msg.items()] == HEADERS
    assert msg.get_content_type() == "multipart/alternative"
    plain, rich = msg.iter_parts()
    assert (plain.get_content_type(), rich.get_content_type()) == ("text/plain", "text/html")
    lf = lambda part: part.get_content().replace("\r\n", "\n")  # noqa: E731 (parsed from the wire: CRLF)
    assert lf(plain) == text and lf(rich) == html  # exact round trip
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert lf(build_message(env(), text, html).get_body(("plain",))) == text


def test_list_headers_stay_valid_urls():
    head = header_block(wire()).decode()
    line = next(x for x in head.split("\r\n") if x.startswith("List-Unsubscribe:"))
    assert line == f"List-Unsubscribe: <{LONG_URL}>,"  # never RFC 2047 words; folded between URLs only
    msg = parse(wire())
    assert msg["List-Unsubscribe"] == f"<{LONG_URL}>, <mailto:unsubscribe@example.org?subject=unsubscribe>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] == "Trending papers <digest.example.org>"
    short = wire(unsubscribe_url="https://d.ex/u", unsubscribe_mailto="u@d.ex")
    # fits: one line
    assert b"\r\nList-Unsubscribe: <https://d.ex/u>, <mailto:u@d.ex?subject=unsubscribe>\r\n" in short


def test_non_ascii_is_encoded_in_short_words_and_decodes_exactly():
    # Python's own folder loses a space here
    subject = "Diffusion für Videos: ‘Zoë’ und 日本語のタイトル — " * 3
    raw = wire(subject=subject.strip(), to_name="Zoë Ångström, \"the\" <admin>")
    for word in re.findall(rb"=\?utf-8\?[bq]\?[^?]*\?=", header_block(raw)):
        assert len(word) <= 75  # RFC 2047
    msg = parse(raw)
    assert msg["Subject"] == subject.strip()
    assert msg["To"].addresses[0].display_name == 'Zoë Ångström, "the" <admin>'
    assert msg["To"].addresses[0].addr_spec == "ada@example.org"


def test_no_header_injection():
    raw = wire(subject="Hi\r\nBcc: victim@example.com", to_name="Zoë\nBcc: x@y.z\r\n\r\nbody",
               list_id="l\r\nX-Evil: 1 <l.example.org>")
    msg = parse(raw)
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert [name for name, _ in msg.items()] == HEADERS
    assert msg["Subject"] == "Hi Bcc: victim@example.com"


@settings(max_examples=60, deadline=None)
@given(subject=st.text(min_size=1, max_size=200), name=st.text(max_size=80))
def test_any_untrusted_subject_or_name_stays_in_its_header(subject, name):
    raw = wire(subject=subject, to_name=name)
    assert raw.isascii()
    msg = parse(raw)
    assert [n for n, _ in msg.items()] == HEADERS
    assert msg["To"].addresses[0].addr_spec == "ada@example.org"
    assert msg.get_body(("plain",)).get_content() == "text part\r\n"


def test_message_id_is_made_once_per_delivery_and_never_again():
    """Made at planning and stored with the delivery (a retry reuses it); a delivery that gets a
    deleted one's row id gets a new Message-ID all the same."""
    assert make_message_id(7, "2026-W47", "example.org", "ab12") == "<digest.7.2026-W47.ab12@example.org>"
    assert make_message_id(7, "2026-W47", "example.org") != make_message_id(7, "2026-W47", "example.org")
    assert parse(wire())["Message-ID"] == "<digest.7.2026-11-22.0a1b2c3d@example.org>"


def test_internationalised_addresses():
    raw = wire(to_address="user@bücher.de", to_name="Jürgen")
    assert parse(raw)["To"].addresses[0].addr_spec == "user@xn--bcher-kva.de"
    with pytest.raises(ValueError, match="SMTPUTF8"):
        wire(to_address="jürgen@example.org")


def test_a_notice_has_no_list_headers_and_says_it_is_automatic():
    notice = Envelope(from_address="Trending Papers <digest@example.org>", to_address="ada@example.org",
                      to_name=None,
                      subject="Confirm your subscription",
                      message_id=new_message_id("confirm", "digest@example.org"),
                      auto_submitted="auto-generated")
    raw = message_bytes(notice, "text part\n", "<p>html part</p>\n")
    msg = parse(raw)
    assert [name for name, _ in msg.items()] == ["From", "To", "Subject", "Date", "Message-ID",
                                                 "Auto-Submitted",
                                                 "MIME-Version", "Content-Type"]
    assert msg["To"] == "ada@example.org" and msg["Auto-Submitted"] == "auto-generated"
    assert re.fullmatch(r"<[^<>@\s]+\.confirm@example\.org>", msg["Message-ID"])
    assert msg.get_content_type() == "multipart/alternative"
    assert [p["Content-Transfer-Encoding"] for p in msg.iter_parts()] == ["quoted-printable"] * 2
    assert new_message_id("confirm", "digest@example.org") != new_message_id("confirm", "digest@example.org")


def test_list_unsubscribe_with_only_one_of_its_urls():
    only_mailto = parse(wire(unsubscribe_url=None))
    assert only_mailto["List-Unsubscribe"] == "<mailto:unsubscribe@example.org?subject=unsubscribe>"
    assert only_mailto["List-Unsubscribe-Post"] is None  # one-click needs the web URL
    only_url = parse(wire(unsubscribe_mailto=None))
    assert only_url["List-Unsubscribe"] == f"<{LONG_URL}>"
    assert only_url["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def _email_package(name: str, value) -> bytes:
    from digest.mail.policy import POLICY
    return POLICY.fold_binary(*POLICY.header_store_parse(name, value))


_WORDS = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=90)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(_WORDS,
                       st.sampled_from(["3 new papers for you: Attention", "Tue, 01 Dec 2026 08:00:00 +0000",
                                                "<digest.7.2026-11-22@example.org>", "1.0", "a  b", " a",
                                                "=?x?=",
                                                'multipart/alternative; boundary="=_digest_0123abcd"'])),
       name=st.sampled_from(["Subject", "List-Id", "Auto-Submitted", "List-Unsubscribe-Post", "X-Anything"]))
def test_a_plain_header_is_written_as_the_email_package_writes_it(value, name):
    """`fold` skips the email package only where the result is the same bytes (free text; a date, a
    message id or a content type always goes through it)."""
    from digest.mail.fast_encoding import fold
    assert fold(name, value) == _email_package(name, value)


@settings(max_examples=300, deadline=None)
@given(display=st.one_of(st.text(max_size=40), st.sampled_from(["Reader 12", "Ada", "", "Dr. Ada", 'A "B"'])),
       local=st.sampled_from(["reader000001", "a.b+tag", "o'neil", "x_y-z%1"]),
       domain=st.sampled_from(["example.org", "xn--exmple-cua.org", "sub.example.co.uk"]))
def test_a_plain_address_is_written_as_the_email_package_writes_it(display, local, domain):
    from email.headerregistry import Address

    from digest.mail.fast_encoding import fold
    from digest.mail.message import clean_header
    value = Address(display_name=clean_header(display), username=local, domain=domain)
    for name in ("From", "To", "Reply-To"):
        assert fold(name, value) == _email_package(name, value)


@settings(max_examples=300, deadline=None)
@given(body=st.text(st.sampled_from(list("ab .=\t\r\n\u00e9\u201c\u00a0x")), max_size=300)
       | st.text(max_size=400))
def test_quoted_printable_line_by_line_is_binascii_on_the_whole_body(body):
    """The remembered line-by-line encoding gives the very bytes of encoding the body at once."""
    import binascii

    from digest.mail.fast_encoding import qp
    plain = body.replace("\r\n", "\n").replace("\r", "\n")
    assert qp(body) == binascii.b2a_qp(plain.encode(), istext=True).replace(b"\n", b"\r\n")
    assert qp(body) == qp(body)  # the second time from memory


def test_one_click_only_with_an_https_unsubscribe_url():
    """RFC 8058 one-click needs an HTTPS URI: an http URL stays in List-Unsubscribe, without the POST
    header."""
    plain = parse(wire(unsubscribe_url="http://localhost:8000/unsubscribe/abc"))
    assert plain["List-Unsubscribe"] == ("<http://localhost:8000/unsubscribe/abc>, "
                                         "<mailto:unsubscribe@example.org?subject=unsubscribe>")
    assert plain["List-Unsubscribe-Post"] is None
    assert (parse(wire(unsubscribe_url="HTTPS://d.ex/u"))["List-Unsubscribe-Post"]
            == "List-Unsubscribe=One-Click")
