"""The lexical index: BM25 over title + abstract (title weighted), stems plus adjacent-stem bigrams.

Documents are indexed once into a sparse matrix W (documents x terms) that already holds each term's
BM25 weight in each document, so scoring many queries at once is one sparse product Q @ W.T.
Acronyms that the papers define ("graph neural networks (GNNs)") are learned from the papers, so a
query "GNN" also looks for "graph neural network".
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest

import numpy as np
import scipy.sparse as sp

from digest.ranking.assemble import assemble, unit_rows
from digest.ranking.expand import AcronymLearner, Acronyms, TextFacts, text_facts
from digest.ranking.stored_terms import Analysed, analyse_paper, first_sentence
from digest.ranking.text import Segments, same_word, stem, terms, tokens

STARTS_KEPT = 2048  # documents whose token_starts are kept for explanations (the most recently used)


@dataclass(frozen=True)
class Params:
    """Tunable knobs of the lexical model (defaults measured on the eval set, see evaluate.py)."""

    k1: float = 1.2
    b: float = 0.75
    title_weight: float = 2.0  # a title occurrence counts as this many abstract occurrences
    phrase_weight: float = 1.0  # weight of a query bigram relative to a query word
    lead_weight: float = 2.0  # an occurrence in the abstract's first sentence counts this many times
    # Acronyms the papers define ("graph neural networks (GNNs)"): "query" adds the long form to a
    # query naming the acronym; "both" also rewrites acronyms in the papers; "off" ignores them.
    acronyms: str = "query"


class LexicalIndex:
    """BM25F-style index of (title, abstract) pairs.

    `docs` may be a sequence that reads a document's text when asked (the planner's stored texts): it
    is kept as given, and only read for explanations, for a document without an `analysed` record,
    and (acronyms "both") to rewrite every text. `analysed`, when given, holds each document's stored
    analysis (stored_terms.Analysed, or None to analyse that document here), in the order of `docs`;
    it may be an iterator, consumed once, so a large corpus never holds every record at once. The
    matrices are assembled from those records with numpy (`assemble.Assembler`), the same index as
    from the texts."""

    def __init__(self, docs: Sequence[tuple[str, str]], params: Params | None = None,
                 analysed: Iterable[Analysed | None] | None = None) -> None:
        self.params = p = params or Params()
        self.docs = docs = docs if isinstance(docs, Sequence) else list(docs)
        self._long: dict[str, list[str]] = {}
        self._segments: dict[int, Segments] = {}
        # the last STARTS_KEPT documents' token_starts (a dict of lists per document: ~10 KB each, and a
        # 10,000-paper run explains nearly every paper; made again from the kept tokens in microseconds)
        self._token_starts: OrderedDict[int, dict[str, list[tuple[int, int]]]] = OrderedDict()
        records = iter(analysed) if analysed is not None else iter(())
        learner = AcronymLearner()
        if p.acronyms == "both":  # each paper's text is rewritten with the corpus's acronyms: analysed here
            for (title, abstract), a in zip_longest(docs, list(records)):
                learner.add(a.facts if a is not None else text_facts(f"{title}. {abstract}"))
            self.acronyms: Acronyms | None = learner.result()
            records = (self._rewritten(d, t, a) for d, (t, a) in enumerate(docs))
        else:
            records = self._each(docs, records, learner if p.acronyms != "off" else None)
        built = assemble(records, len(docs), p)
        if p.acronyms == "query":
            self.acronyms = learner.result()
        elif p.acronyms == "off":
            self.acronyms = None
        self.vocab, self.W, self.abstract_tf = built.vocab, built.W, built.abstract_tf
        self.n_docs, self.df, self.idf = len(docs), built.df, built.idf
        self.unseen_idf = math.log1p((self.n_docs + 0.5) / 0.5)

    @staticmethod
    def _each(docs: Sequence[tuple[str, str]], records: Iterator[Analysed | None],
              learner: AcronymLearner | None) -> Iterator[Analysed]:
        """Each document's record, analysed here where none was stored; its acronym facts learned."""
        for d in range(len(docs)):
            a = next(records, None)
            if a is None:
                a = analyse_paper(*docs[d])
            if learner is not None:
                learner.add(a.facts)
            yield a

    def _rewritten(self, d: int, title: str, abstract: str) -> Analysed:
        table = self.acronyms.for_text(d) if self.acronyms else {}
        return analyse_paper(title, abstract, self.analyse(title, table), self.analyse(abstract, table),
                             self.analyse(first_sentence(abstract), table), TextFacts())

    @property
    def doc_tokens(self) -> _Segments:
        """Each document's tokens (title, then abstract), made on first use (explanations only)."""
        return _Segments(self)

    def analyse(self, text: str, acronyms: dict[str, str]) -> Segments:
        """Tokens of a text with each acronym in `acronyms` replaced by its long form (the acronym
        stays the surface of those tokens, for explanations)."""
        segs = tokens(text)
        if not acronyms:
            return segs
        return [[(s, w) for st, w in seg for s in self._expand(st, acronyms)] for seg in segs]

    def _starts(self, d: int) -> dict[str, list[tuple[int, int]]]:
        """`token_starts` of document d, made once per document."""
        kept = self._token_starts
        got = kept.get(d)
        if got is None:
            got = kept[d] = token_starts(self.doc_tokens[d])
            if len(kept) > STARTS_KEPT:
                kept.popitem(last=False)
        else:
            kept.move_to_end(d)
        return got

    def analyse_query(self, text: str) -> Segments:
        """Tokens of a query; an acronym the corpus agrees on also brings its long form."""
        segs = tokens(text)
        if not self.acronyms:
            return segs
        table = self.acronyms.common
        extra = [[(s, w) for s in self._expand(st, table)] for seg in segs for st, w in seg if st in table]
        return segs + extra

    def _expand(self, st: str, table: dict[str, str]) -> list[str]:
        long = table.get(st)
        if long is None:
            return [st]
        if long not in self._long:
            self._long[long] = [s for seg in tokens(long) for s, _ in seg]
        return self._long[long]

    # -- queries -------------------------------------------------------------------------------
    def query_terms(self, text: str) -> Counter[str]:
        """Weighted terms of one query: words and bigrams (a bigram is a piece of a phrase)."""
        weights: Counter[str] = Counter()
        for t in terms(self.analyse_query(text)):
            weights[t] += self.params.phrase_weight if " " in t else 1.0
        return weights

    def query_matrix(self, queries: Sequence[str]) -> tuple[sp.csr_matrix, np.ndarray]:
        """One row of term weights per query, and each query's ideal (maximum reachable) score."""
        p = self.params
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        ideal = np.zeros(len(queries))
        for q, text in enumerate(queries):
            for t, w in self.query_terms(text).items():
                col = self.vocab.get(t)
                ideal[q] += w * (p.k1 + 1) * (self.idf[col] if col is not None else self.unseen_idf)
                if col is not None:
                    rows.append(q)
                    cols.append(col)
                    vals.append(w)
        Q = sp.csr_matrix((vals, (rows, cols)), shape=(len(queries), len(self.vocab)), dtype=np.float32)
        return Q, ideal

    def scores(self, Q: sp.csr_matrix) -> np.ndarray:
        """Dense (queries x documents) BM25 scores."""
        return _by_rows(self.W, Q)

    def relevance(self, queries: Sequence[str]) -> tuple[np.ndarray, sp.csr_matrix]:
        """Scores scaled by each query's ideal score, so topics of different lengths compare (0..~1)."""
        Q, ideal = self.query_matrix(queries)
        S = self.scores(Q)
        S /= np.maximum(ideal, 1e-9)[:, None].astype(np.float32)
        return S, Q

    def coverage(self, queries: Sequence[str]) -> np.ndarray:
        """(queries x documents): share of each query's word IDF mass that the document contains.
        An acronym and its long form are alternatives: the better-covered reading counts."""
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        owner: list[int] = []
        total: list[float] = []
        table = self.acronyms.common if self.acronyms else {}
        for q, text in enumerate(queries):
            readings = {frozenset(terms(text, bigrams=False))}
            if table:
                readings.add(frozenset(terms(self.analyse(text, table), bigrams=False)))
            for words in readings:
                mass = 0.0
                for t in words:
                    col = self.vocab.get(t)
                    mass += self.idf[col] if col is not None else self.unseen_idf
                    if col is not None:
                        rows.append(len(owner))
                        cols.append(col)
                        vals.append(self.idf[col])
                owner.append(q)
                total.append(mass)
        C = sp.csr_matrix((vals, (rows, cols)), shape=(len(owner), len(self.vocab)), dtype=np.float32)
        per_reading = _present_by_rows(self.W, C)
        per_reading /= np.maximum(np.array(total, np.float32), 1e-9)[:, None]
        out = np.zeros((len(queries), self.n_docs), np.float32)
        np.maximum.at(out, np.array(owner, dtype=np.intp), per_reading)
        return out

    def presence(self, queries: Sequence[str]) -> np.ndarray:
        """Boolean (queries x documents): the document holds every word and bigram of the query."""
        wanted = [set(terms(q)) for q in queries]
        rows = [i for i, ts in enumerate(wanted) for t in ts if t in self.vocab]
        cols = [self.vocab[t] for ts in wanted for t in ts if t in self.vocab]
        Q = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(queries), len(self.vocab)))
        needed = np.array([len(ts) for ts in wanted])
        hits = _present_by_rows(self.W, Q)
        return (hits >= needed[:, None]) & (needed[:, None] > 0)

    # -- documents -----------------------------------------------------------------------------
    def binary(self) -> sp.csr_matrix:
        """Term presence (documents x terms), sharing W's index arrays."""
        W = self.W
        return sp.csr_matrix((np.ones(W.nnz, W.dtype), W.indices, W.indptr), shape=W.shape, copy=False)

    def unit_rows(self, abstracts_only: bool = False, *, last: bool = False) -> sp.csr_matrix:
        """Document vectors scaled to unit length (for document-document cosine). `last` (abstracts
        only): the abstracts' counts are not needed again (a corpus's duplicate groups are made once):
        the rows are made in their place, and the index drops them."""
        if abstracts_only:
            if self.abstract_tf is None:
                raise ValueError("the abstracts' counts were dropped (unit_rows(..., last=True))")
            tf = self.abstract_tf
            if last:
                self.abstract_tf = None
            return unit_rows(tf, self.idf, in_place=last)
        M = self.W
        norms = np.sqrt(np.asarray(M.multiply(M).sum(axis=1)).ravel())
        return (sp.diags(1 / np.maximum(norms, 1e-9)) @ M).tocsr().astype(np.float32)

    # -- explanations --------------------------------------------------------------------------
    def matched(self, query: str, Q: sp.csr_matrix, t: int, d: int, limit: int = 4) -> list[str]:
        """Surface forms (as written in the document) of the query terms the document matches:
        the whole query phrase first when it occurs, then the heaviest terms. `Q[t]`: the query's
        terms and weights (its row of `query_matrix`)."""
        doc, query_row = _row(self.W, d), _row(Q, t)
        weight = dict(zip(*doc, strict=True))
        contrib = {c: w * qv for c, qv in zip(*query_row, strict=True) if (w := weight.get(c))}
        if not contrib:
            return []
        names = {self.vocab.get(t): t for t in self.query_terms(query)}
        segs, starts = self.doc_tokens[d], self._starts(d)
        query_segs = self.analyse_query(query)
        shown: list[str] = []
        covered: set[str] = set()
        for qseg in query_segs:
            stems = [s for s, _ in qseg]
            if len(stems) > 1 and (surface := _find_run(segs, stems, starts)):
                shown.append(surface)
                covered.update(stems)
        for col in sorted(contrib, key=contrib.__getitem__, reverse=True):
            parts = names[col].split(" ")
            if set(parts) <= covered:
                continue
            surface = _find_run(segs, parts, starts)
            if surface and surface not in shown:
                shown.append(surface)
                covered.update(parts)
        said = {s: w for seg in query_segs for s, w in seg}  # the reader's word per stem
        return [m for m in shown
                if all(same_word(w, said.get(stem(w.lower()), w)) for w in m.split())][:limit]


def _by_rows(D: sp.csr_matrix, Q: sp.csr_matrix) -> np.ndarray:
    """Dense (queries x documents) `Q @ D.T`, float32, computed as `(D @ Q.T).T`: no transposed copy
    of the documents' matrix (at 200,000 papers, hundreds of MB). The same numbers: each sum runs over
    the shared terms in column order either way (D's rows and Q's have sorted indices)."""
    if not D.has_sorted_indices:
        raise ValueError("the documents' rows must hold their terms in column order")
    return np.asarray((D @ Q.T).T.todense(), dtype=np.float32)


def _present_by_rows(D: sp.csr_matrix, Q: sp.csr_matrix) -> np.ndarray:
    """`_by_rows` of D's pattern (ones: `LexicalIndex.binary`) and Q, over the columns Q uses only: no
    array of ones as long as D (at 200,000 papers, 125 MB). The same numbers: the columns kept are
    renumbered in their order, so each sum runs over the same terms in the same order."""
    used = np.unique(Q.indices)
    at = np.flatnonzero(np.isin(D.indices, used))  # D's entries in those columns, in order
    rows = np.searchsorted(D.indptr, at, side="right") - 1
    indptr = np.zeros(D.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=D.shape[0]), out=indptr[1:])
    cols = np.searchsorted(used, D.indices[at]).astype(np.int32)
    present = sp.csr_matrix((np.ones(len(at), D.dtype), cols, indptr), shape=(D.shape[0], len(used)))
    present.has_sorted_indices = True  # D's order, renumbered in order
    Q = Q.tocsc()[:, used].tocsr()
    return _by_rows(present, Q)


def _row(M: sp.csr_matrix, i: int) -> tuple[list[int], list[float]]:
    """Row i of a CSR matrix as (columns, values), without scipy's indexing (30 us a call)."""
    lo, hi = M.indptr[i], M.indptr[i + 1]
    return M.indices[lo:hi].tolist(), M.data[lo:hi].tolist()


def _find_run(segs: Segments, stems: list[str], starts: dict[str, list[tuple[int, int]]]) -> str | None:
    """The surface text of the first run of tokens spelling `stems` (an acronym shown once);
    `starts` (`token_starts` of `segs`) says where the first stem occurs."""
    n = len(stems)
    for k, i in starts.get(stems[0], ()):
        seg = segs[k]
        if i + n <= len(seg) and all(seg[i + j][0] == stems[j] for j in range(1, n)):
            words = [w for _, w in seg[i : i + n]]
            return " ".join(w for k, w in enumerate(words) if k == 0 or w != words[k - 1])
    return None


def token_starts(segs: Segments) -> dict[str, list[tuple[int, int]]]:
    """Each stem's places in `segs`, (segment, position), in reading order."""
    out: dict[str, list[tuple[int, int]]] = {}
    for k, seg in enumerate(segs):
        for i, (st, _) in enumerate(seg):
            out.setdefault(st, []).append((k, i))
    return out


class _Segments:
    """`LexicalIndex.doc_tokens[d]`: document d's tokens, analysed on first use and kept."""

    def __init__(self, index: LexicalIndex) -> None:
        self.index = index

    def __getitem__(self, d: int) -> Segments:
        ix = self.index
        got = ix._segments.get(d)
        if got is None:
            title, abstract = ix.docs[d]
            table = ix.acronyms.for_text(d) if ix.acronyms and ix.params.acronyms == "both" else {}
            got = ix._segments[d] = ix.analyse(title, table) + ix.analyse(abstract, table)
        return got

    def __len__(self) -> int:
        return self.index.n_docs
