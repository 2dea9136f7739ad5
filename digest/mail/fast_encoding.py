"""Message encoding, fast: the bytes the email package and binascii would write, without their cost
per message. Speed work, behind this contract: what `fold` and `qp`/`qp_parts` return is byte for
byte what the email package writes for that header (`POLICY`) and what binascii's quoted-printable
(RFC 2045: lines of at most 76 characters, CRLF line ends) gives for the whole body. Checked by
tests/test_mail_message.py (each header and body against the email package's own encoding) and
tests/test_render_parts.py (a message made from the renderer's parts against the message encoded
whole).

- A short plain header value (printable ASCII words, a plain address or Message-ID) is written as it
  is; anything else goes through the email package, remembered for values many messages repeat.
- A body is encoded line by line (a line's encoding depends on that line alone) and each line's
  encoding remembered: most lines of a digest are the template's or a paper's, the same in thousands
  of messages of a run. A part many messages share is remembered whole; the parts that are one
  message's own are encoded together, in one encoder call.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from email.headerregistry import Address, AddressHeader, UnstructuredHeader
from functools import lru_cache

from digest.mail.policy import POLICY, VERBATIM, fold_list

# A value the email package would write unchanged: printable ASCII words, single spaces, no encoded word.
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")
_PLAIN_ADDR = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+")
# A Message-ID the email package writes back unchanged (ours: `make_message_id`), checked without parsing it.
_PLAIN_MSGID = re.compile(r"<[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+>")


def _plain(value: str | Address) -> str | None:
    """`value` as the email package would write it on one line, when that is plainly the value itself."""
    if isinstance(value, Address):
        addr = value.addr_spec
        if not _PLAIN_ADDR.fullmatch(addr):
            return None
        if not value.display_name:
            return addr
        return f"{value.display_name} <{addr}>" if _PLAIN_NAME.fullmatch(value.display_name) else None
    return value if _PLAIN.fullmatch(value) and "=?" not in value else None


@lru_cache(maxsize=64)
def _free_text(name: str) -> bool:
    """An unstructured or address header: the email package writes a plain value of it unchanged
    (a date, a message id or a content type it parses and rewrites)."""
    return issubclass(POLICY.header_factory[name], (UnstructuredHeader, AddressHeader))


def fold(name: str, value: str | Address) -> bytes:
    """One header line as it goes on the wire. A short plain value of free text is written as it is
    (what the email package would write, only without parsing it); the rest goes through the email
    package."""
    if name.lower() in VERBATIM:
        return fold_list(name, str(value), "\r\n").encode("ascii")
    if name.lower() == "message-id" and isinstance(value, str) and _PLAIN_MSGID.fullmatch(value):
        plain: str | None = value
    else:
        plain = _plain(value) if _free_text(name) else None
    if plain is not None and len(name) + 2 + len(plain) <= POLICY.max_line_length:
        return f"{name}: {plain}\r\n".encode("ascii")
    if isinstance(value, str):
        return _fold_text(name, value)
    return POLICY.fold_binary(*POLICY.header_store_parse(name, value))


@lru_cache(maxsize=16384)
def _fold_text(name: str, value: str) -> bytes:
    """The email package's folding, remembered for values many messages repeat (a date, the boundary,
    a subject: "10 new papers for you: <the top paper>"; encoding a non-ASCII one costs 0.4 ms)."""
    return POLICY.fold_binary(*POLICY.header_store_parse(name, value))


_QP_LINES: dict[str, bytes] = {}  # a line -> its quoted-printable form, CRLF ended
_QP_REMEMBERED = 50_000


def qp(body: str) -> bytes:
    """Quoted-printable (RFC 2045: lines of at most 76 characters), CRLF line ends (a bare CR too).

    Encoded line by line, as binascii encodes (a line's encoding depends on that line alone), and
    remembered: most lines of a digest are the template's or a paper's, the same in thousands of
    messages of a run.
    """
    lines = _QP_LINES
    if len(lines) > _QP_REMEMBERED:
        lines.clear()
    *whole, last = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out = []
    for line in whole:
        encoded = lines.get(line)
        if encoded is None:
            encoded = lines[line] = _qp_lines(f"{line}\n")
        out.append(encoded)
    if last:
        out.append(_qp_lines(last))
    return b"".join(out)


def _qp_lines(text: str) -> bytes:
    """binascii's quoted-printable of `text` (LF line ends), with CRLF line ends."""
    return binascii.b2a_qp(text.encode(), istext=True).replace(b"\n", b"\r\n")


_QP_PARTS: dict[str, bytes] = {}  # a part many messages share -> its quoted-printable form
_QP_PARTS_REMEMBERED = 20_000


def qp_parts(parts: Sequence[tuple[str, bool]]) -> bytes:
    """`_qp` of the parts joined, each part being whole lines: a shared part's encoding is
    remembered whole (an entry's lines, the same in every message that shows it); the parts of this
    message's own are encoded together (`_qp_own`) and not remembered."""
    own = iter(_qp_own([part for part, shared in parts if not shared]))
    out = []
    for part, shared in parts:
        if not shared:
            out.append(next(own))
            continue
        encoded = _QP_PARTS.get(part)
        if encoded is None:
            if len(_QP_PARTS) > _QP_PARTS_REMEMBERED:
                _QP_PARTS.clear()
            encoded = _QP_PARTS[part] = qp(part)
        out.append(encoded)
    return b"".join(out)


_CUT = "\x00\n"  # a line between two own parts: encoded as `=00`, which only a NUL character encodes to


def _qp_own(parts: list[str]) -> list[bytes]:
    """Each part's quoted-printable form, by one encoder call for them all: the encoding of a line
    depends on that line alone, so the parts (whole lines) are encoded joined by a line `_CUT` and cut
    apart where it came out. Parts holding a NUL (or not whole lines) are encoded one by one."""
    if len(parts) < 2:
        return [_qp_lines(_lf(p)) for p in parts]
    joined = _CUT.join(parts)
    if joined.count("\x00") != len(parts) - 1 or not all(p.endswith("\n") for p in parts[:-1]):
        return [_qp_lines(_lf(p)) for p in parts]
    out = _qp_lines(_lf(joined)).split(b"=00\r\n")
    assert len(out) == len(parts)
    return out


def _lf(text: str) -> str:
    """LF line ends (CRLF and a bare CR become LF), as `_qp` encodes them."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
