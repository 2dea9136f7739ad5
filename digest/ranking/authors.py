"""Followed authors: the one rule for "is this the same person", and the papers each name wrote.

Names are compared tolerantly, as papers spell them: case, accents and punctuation do not matter
("Müller" ~ "muller"), "Surname, Given" is "Given Surname", and an initial stands for any given name
with that letter ("Y. LeCun" ~ "Yann LeCun"). Two given names written out in full must agree ("Yves
LeCun" is not "Yann LeCun", though "Y. LeCun" may be either). A name of one word (a surname alone)
matches every author of that surname.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_SUFFIXES = {"jr", "sr", "ii", "iii", "iv"}
_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class NameKey:
    """A name reduced for matching: the surname and the given names (an initial ends with ".")."""

    surname: str
    given: tuple[str, ...]


def name_key(name: str) -> NameKey | None:
    """The key of a name as written ("Yann LeCun", "LeCun, Yann", "Y. LeCun"), None if it has no letters."""
    # casefold, and again after upper case: "ı" and "I" are one letter; NFD, not NFKD: "Ŀ" is not "L·"
    text = unicodedata.normalize("NFD", name.casefold().upper().casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    if "," in text:  # "LeCun, Yann" (BibTeX, Zotero): the part before the comma is the surname
        last, _, first = text.partition(",")
        text = f"{first} {last}"
    # an initial is a one-letter word or one written with a dot ("ß." folds to "ss.": still an initial)
    words = [(m.group(), len(m.group()) == 1 or text.startswith(".", m.end()))
             for m in _WORD.finditer(text) if m.group() not in _SUFFIXES]
    if not words:
        return None
    return NameKey(words[-1][0], tuple(w + "." if initial else w for w, initial in words[:-1]))


def same_author(a: str | NameKey | None, b: str | NameKey | None) -> bool:
    """Whether two spellings may name the same person: same surname, and each given name the two
    both write agrees (an initial agrees with any name it starts; full names must be equal)."""
    ka = name_key(a) if isinstance(a, str) else a
    kb = name_key(b) if isinstance(b, str) else b
    if ka is None or kb is None or ka.surname != kb.surname:
        return False
    return all(_given_agree(x, y) for x, y in zip(ka.given, kb.given, strict=False))


def _given_agree(x: str, y: str) -> bool:
    """Given names agree when equal, or when one is an initial ("y.") the other starts with."""
    if x.endswith(".") or y.endswith("."):
        a, b = x.rstrip("."), y.rstrip(".")
        return a.startswith(b) or b.startswith(a)
    return x == y


class AuthorIndex:
    """The authors of a list of papers by surname, for finding every paper a followed name wrote."""

    def __init__(self, authors: Sequence[Sequence[str]]):
        self._by_surname: dict[str, list[tuple[int, str, NameKey]]] = {}
        for row, names in enumerate(authors):
            for spelled in names:
                key = name_key(spelled) if isinstance(spelled, str) else None
                if key is not None:
                    self._by_surname.setdefault(key.surname, []).append((row, spelled, key))

    def papers_by(self, name: str) -> dict[int, str]:
        """Rows of the papers `name` may have written, each with the name as that paper spells it."""
        key = name_key(name)
        if key is None:
            return {}
        out: dict[int, str] = {}
        for row, spelled, other in self._by_surname.get(key.surname, ()):
            if row not in out and same_author(key, other):
                out[row] = spelled
        return out

    def rows_by(self, name: str) -> np.ndarray:
        import numpy as np

        return np.fromiter(self.papers_by(name), dtype=np.int64)
