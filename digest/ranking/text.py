"""Text analysis shared by the index, the queries and the explanations.

A text is split into segments at punctuation (so a phrase never spans a sentence or a parenthesis),
each segment into word tokens (hyphens split: "self-supervised" == "self supervised"), stop words
dropped, and every word Snowball-stemmed. Tokens keep their surface form for explanations.

Snowball's English stemmer strips some suffixes that change a word's meaning and keeps apart some
words of one family, and an explanation shows the document's word as a match for the reader's, so
`stem` corrects both (`_FAMILIES`):
- "-able"/"-ible" keeps Snowball's stem for ranking (keeping it apart cost 0.004 nDCG@10 on the eval:
  "interpretable" papers are about "interpretation"), but an explanation never shows an "-able"
  word as the match of a reader's word without it, nor the reverse (`same_word`): "reasonable" is
  not shown as matching "reasoning".
- "-ize"/"-ization" stays: "normalization" is not "normal", "personalized" not "person",
  "optimization" not "optimal"; "normalizing" still matches "normalization".
- Greek nouns in "-y" meet their adjectives: "theoretical" matches "theory", "geometric" "geometry".
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import snowballstemmer

STOP_WORDS = frozenset(
    """a about after again against all also am an and any are as at be because been before being
    between both but by can could did do does doing during each either etc for from further
    had has have having he her here hers herself him himself his how however i if in into is it its itself
    just let may me might must my myself no nor not now of on only or our ours
    ourselves own per she should since so some such than that the their theirs them
    themselves then there these they this those through thus to too until upon us use used using
    very via was we were what when where whether which while who whom why will with within without would
    yet you your yours yourself yourselves""".split()
)

_SEGMENTS = re.compile(r"[.,;:!?()\[\]{}\"“”‘’/|<>=+*&]+|\s'|'\s")
_WORDS = re.compile(r"[A-Za-z0-9]+")
_ACRONYM_PLURAL = re.compile(r"^[A-Z][A-Z0-9]*[A-Z]s$")  # GNNs, CNNs, LLMs -> GNN, CNN, LLM
BREAK_AT_STOP_WORDS = True  # "diffusion and models" is not the phrase "diffusion models"
_stemmer = snowballstemmer.stemmer("english")
if hasattr(_stemmer, "maxCacheSize"):  # PyStemmer: its own cache costs more than it saves behind `stem`'s
    _stemmer.maxCacheSize = 0


Segments = list[list[tuple[str, str]]]  # runs of adjacent (stem, surface) tokens


# (word pattern, stem): the word's base (group 1, as written) with the family's suffix, instead of Snowball
_FAMILIES = [
    (re.compile(r"([a-z]{3,}?)(?:ize|izes|ized|izing|ization|izations|izer|izers)"), r"\1iz"),
    (re.compile(r"([a-z]*theor)(?:y|ies|etic|etical|etically|ist|ists)"), r"\1i"),
    (re.compile(r"([a-z]{2,}metr)(?:y|ies|ic|ical|ically)"), r"\1i"),
]
_NOT_FAMILY = frozenset({"table", "tables", "cable", "cables", "bible", "size", "sizes", "sized", "prize",
                         "prizes"})


_ABLE = re.compile(r"[a-z]{2,}[ai](?:ble|bles|bly|bility|bilities)")


def same_word(document_word: str, reader_word: str) -> bool:
    """Whether a document word of the same stem may be shown as the match of the reader's word: not
    when one is an "-able" word and the other is not ("reasonable" / "reasoning")."""
    return bool(_ABLE.fullmatch(document_word.lower())) == bool(_ABLE.fullmatch(reader_word.lower()))


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball stem of one lower-case word, kept apart from or joined to its family by `_FAMILIES`."""
    if word not in _NOT_FAMILY and ("iz" in word or "theor" in word or "metr" in word):  # what they need
        for pattern, suffix in _FAMILIES:
            m = pattern.fullmatch(word)
            if m:
                return m.expand(suffix)
    return _stemmer.stemWord(word)


def _fold(word: str, shouting: bool) -> tuple[str, str]:
    """(lower-case word for stemming, surface form for display: acronyms keep their capitals)."""
    if _ACRONYM_PLURAL.match(word):
        word = word[:-1]
    lower = word.lower()
    if shouting or lower == word or sum(c.isupper() for c in word) < 2:
        return lower, lower
    return lower, word


def tokens(text: str) -> Segments:
    """Runs of adjacent (stem, surface) pairs; punctuation and stop words end a run."""
    out: Segments = []
    shouting = text.isupper()  # an all-caps title: no acronyms to keep
    for segment in _SEGMENTS.split(text):
        seg: list[tuple[str, str]] = []
        for raw in _WORDS.findall(segment):
            word, surface = _fold(raw, shouting)
            if word in STOP_WORDS or (len(word) < 2 and not word.isdigit()):
                if seg and BREAK_AT_STOP_WORDS:
                    out.append(seg)
                    seg = []
                continue
            seg.append((stem(word), surface))
        if seg:
            out.append(seg)
    return out


def terms(text: str | Segments, bigrams: bool = True) -> list[str]:
    """Index terms of a text (or of its tokens): stems, then 'stem1 stem2' for adjacent pairs in a run."""
    out: list[str] = []
    for seg in tokens(text) if isinstance(text, str) else text:
        stems = [s for s, _ in seg]
        out.extend(stems)
        if bigrams:
            out.extend(f"{a} {b}" for a, b in zip(stems, stems[1:], strict=False))
    return out


def term_hash(term: str) -> int:
    """The 64-bit key of an index term or stem (blake2b), the same wherever a term is stored or looked up
    (stored_terms, assemble.Vocab, expand.TextFacts)."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little")
