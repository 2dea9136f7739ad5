"""Query expansion learned from the indexed papers themselves: acronyms defined in the text.

Authors define their acronyms: "graph neural networks (GNNs)", "automated machine learning (AutoML)".
We find those definitions with the Schwartz-Hearst rule (every letter of the short form appears, in
order, in the long form, and the first letter starts a word), count them over the corpus, and keep
the dominant long form of each acronym. A query naming either side is then expanded to the other.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable

from digest.ranking.text import stem, tokens

_DEFINITION = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9\-]{1,9})\s*\)")
_PLAIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]+")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")


def _long_form(short: str, before: str) -> str | None:
    """Schwartz-Hearst: the shortest tail of `before` that spells `short`, or None."""
    words = _WORD.findall(before)
    window = " ".join(words[-min(len(short) + 5, 2 * len(short)) :])
    s, i = len(short) - 1, len(window) - 1
    while s >= 0:
        c = short[s].lower()
        if not c.isalnum():
            s -= 1
            continue
        while i >= 0 and (window[i].lower() != c or (s == 0 and i > 0 and window[i - 1].isalnum())):
            i -= 1
        if i < 0:
            return None
        i -= 1
        s -= 1
    long = window[window.rfind(" ", 0, i + 1) + 1 :]
    n_words = len(long.split())
    if n_words < 2 or n_words > len(short) + 2 or long.lower().startswith(short.lower()):
        return None
    return long


def mine_acronyms(texts: Iterable[str], min_count: int = 1, min_share: float = 0.5) -> dict[str, str]:
    """Acronym stem -> its dominant long form (surface text), from definitions in the texts.

    An acronym must have at least two capitals (GNN, AutoML, RL); one defined with several
    different long forms is kept only when one of them has at least `min_share` of the uses.
    """
    seen: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
    surface: dict[tuple[str, ...], str] = {}
    lower_uses: Counter[str] = Counter()  # "cat", "safe": words that are not only acronyms
    upper_uses: Counter[str] = Counter()
    for text in texts:
        for w in _PLAIN_WORD.findall(text):
            (upper_uses if any(c.isupper() for c in w[1:]) else lower_uses)[w.lower()] += 1
        for m in _DEFINITION.finditer(text):
            short = m.group(1)
            if short.endswith("s") and short[:-1].isupper():
                short = short[:-1]
            if sum(c.isupper() for c in short) < 2:
                continue
            before = text[max(0, m.start() - 200) : m.start()]
            before = before[max(before.rfind("("), before.rfind(")")) + 1 :]
            long = _long_form(short, before)
            if not long:
                continue
            key = tuple(s for seg in tokens(long) for s, _ in seg)
            if len(key) < 2:
                continue
            seen[short.lower()][key] += 1
            surface.setdefault(key, long.lower())
    out: dict[str, str] = {}
    for short, forms in seen.items():
        (best, n), total = forms.most_common(1)[0], sum(forms.values())
        if n >= min_count and n >= min_share * total and lower_uses[short] <= upper_uses[short]:
            out[stem(short)] = surface[best]
    return out
