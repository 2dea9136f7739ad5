"""How our headers are folded: Python's SMTP policy with two fixes for what we send (`DigestPolicy`)."""

from __future__ import annotations

from email.header import Header
from email.policy import EmailPolicy

# Headers whose value is a list of URLs: written as they are, folded only between the URLs.
VERBATIM = frozenset({"list-unsubscribe", "list-unsubscribe-post"})
_ADDRESSES = frozenset({"from", "to", "reply-to"})


class DigestPolicy(EmailPolicy):
    """Python's SMTP policy with two fixes for what we send.

    - URL headers are never turned into RFC 2047 encoded words: the default folding splits a long
      `List-Unsubscribe` URL into encoded words, which breaks it.
    - Non-ASCII subjects and display names are encoded whole, in words of at most 75 characters:
      the default folder can leave a space between two encoded words, where readers drop it.

    Everything else is the standard behaviour, with 76-character lines (RFC 2045 quoted-printable).
    """

    def fold(self, name: str, value) -> str:  # type: ignore[override]
        return self._fold_ours(name, value) or super().fold(name, value)

    def fold_binary(self, name: str, value) -> bytes:  # type: ignore[override]
        ours = self._fold_ours(name, value)
        return ours.encode("ascii") if ours else super().fold_binary(name, value)

    def _fold_ours(self, name: str, value) -> str | None:
        key = name.lower()
        if key in VERBATIM:
            return fold_list(name, str(value), self.linesep)
        if str(value).isascii():
            return None
        if key == "subject":
            return f"{name}: {_words(str(value), name, self.linesep)}{self.linesep}"
        addresses = getattr(value, "addresses", ())
        if key in _ADDRESSES and len(addresses) == 1 and addresses[0].addr_spec.isascii():
            a = addresses[0]
            return (f"{name}: {_words(a.display_name, name, self.linesep)}{self.linesep} "
                    f"<{a.addr_spec}>{self.linesep}")
        return None


def _words(text: str, name: str, linesep: str) -> str:
    """`text` as RFC 2047 encoded words (UTF-8, base64), folded at 76 characters, every space kept."""
    return Header(text, "utf-8", maxlinelen=76, header_name=name).encode(linesep=linesep)


def fold_list(name: str, value: str, linesep: str) -> str:
    """`Name: <a>, <b>` on one line, or one URL per line when that is long (RFC 2369 allows it)."""
    line = f"{name}: {value}"
    if len(line) <= 78:
        return line + linesep
    return f"{name}: " + f",{linesep} ".join(v.strip() for v in value.split(",")) + linesep


POLICY = DigestPolicy(linesep="\r\n", max_line_length=76)
