"""Analyzers turn a manifest track into the terms of a target space.

Registered by kind (``tags``, ``text``); a space's ``model.json`` stores the
kind and every parameter (per-language stop words included), so new items are
analyzed exactly as the training items were.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import cache
from itertools import chain
from typing import NamedTuple, Protocol

import pandas as pd

from musicrep.data.manifest import tag_column
from musicrep.errors import InputError, UsageError
from musicrep.targets.stopwords import STOP_WORDS, normalize_language

logger = logging.getLogger(__name__)


class Analyzer(Protocol):
    """Document -> terms; also extracts documents from a manifest frame."""

    kind: str

    def __call__(self, document: object) -> list[str]: ...

    def documents(self, frame: pd.DataFrame) -> tuple[list[object], dict[int, str]]:
        """One document per row, and ``{row: reason}`` for rows without data."""
        ...

    def to_dict(self) -> dict: ...


@dataclass
class TagAnalyzer:
    """Each tag is one term, namespaced by tagset (``styles:hard rock``)."""

    tagsets: list[str]
    kind: str = "tags"

    def __call__(self, document: object) -> list[str]:
        return list(document)  # type: ignore[arg-type]

    def documents(self, frame: pd.DataFrame) -> tuple[list[object], dict[int, str]]:
        for tagset in self.tagsets:
            if tag_column(tagset) not in frame:
                raise InputError(f"no tagset {tagset!r} in the manifest")
        columns = [frame[tag_column(t)].to_numpy(dtype=object) for t in self.tagsets]
        docs: list[object] = []
        missing: dict[int, str] = {}
        for row in range(len(frame)):
            terms = [f"{t}:{tag}" for t, column in zip(self.tagsets, columns, strict=True) for tag in column[row]]
            if not terms:
                missing[row] = f"no tags in {', '.join(self.tagsets)}"
            docs.append(terms)
        return docs, missing

    def to_dict(self) -> dict:
        return asdict(self)


# Letters whose diacritics are folded (Latin, Greek, Cyrillic; their combining marks excluded) ...
_FOLDED_LETTERS = (r"\x00-\u02ff\u0370-\u0482\u048a-\u052f\u1c80-\u1c8f\u1e00-\u1fff\u2c60-\u2c7f"
                   r"\ua640-\ua66e\ua680-\ua69f\ua720-\ua7ff\uab30-\uab6f")
# ... and their combining diacritics.
_DIACRITICS = (r"\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\u2de0-\u2dff"
               r"\ua66f-\ua67d\ufe20-\ufe2f")
_DIACRITICS_ON_LETTER = re.compile(rf"(?<=[{_FOLDED_LETTERS}])[{_DIACRITICS}]+")
# Scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, kana, Han.
_UNSPACED = (r"\u0e00-\u0eff\u1000-\u109f\ua9e0-\ua9ff\uaa60-\uaa7f\u1780-\u17ff\u19e0-\u19ff"
             r"\u3005-\u3007\u303b\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
             r"\U00020000-\U000323af")
_UNSPACED_CHAR = re.compile(rf"[{_UNSPACED}]")
_UNSPACED_RUNS = re.compile(rf"([{_UNSPACED}]+)|([^{_UNSPACED}]+)")
# Vulgar fractions (½, ⅓, ...): kept as they are, since NFKC would glue "33⅓" into "331⁄3".
_FRACTIONS = re.compile(r"([\u00bc-\u00be\u2150-\u215f\u2189])")
EVERY_LANGUAGE = "*"


def fold(text: str) -> str:
    """Case-fold; strip the diacritics of Latin, Greek and Cyrillic letters; leave other scripts intact.

    Compatibility forms are unified first (NFKC: full-width Latin, half-width
    katakana, ligatures; not vulgar fractions, so ``33⅓`` stays ``33⅓`` rather
    than ``331⁄3``) and the result is composed (NFC), so the marks that
    belong to letters of other scripts (Devanagari vowel signs and virama, the
    Japanese dakuten, Thai tone marks) stay on their letters.

    Parameters
    ----------
    text : str

    Returns
    -------
    str

    Examples
    --------
    >>> fold("Fröhlich ΜΟΥΣΙΚΉ Ёлка")
    'frohlich μουσικη елка'
    >>> fold("ｷﾞﾀｰ संगीत")
    'ギター संगीत'
    >>> fold("33⅓ RPM")
    '33⅓ rpm'
    """
    if _FRACTIONS.search(text):
        text = "".join(piece if i % 2 else unicodedata.normalize("NFKC", piece)
                       for i, piece in enumerate(_FRACTIONS.split(text))).casefold()
    else:
        text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", _DIACRITICS_ON_LETTER.sub("", decomposed))


@cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Word tokens and grapheme clusters, built on first use (scans the Unicode marks once).

    A word is letters, digits and combining marks (Indic vowel signs are marks,
    which ``\\w`` alone splits off), zero-width (non-)joiners included; ``&``
    between two words joins them (``r&b``). Apostrophes, hyphens and other
    punctuation split (``l'album`` -> ``l``, ``album``; ``hip-hop`` -> ``hip``,
    ``hop``, as ``hip hop`` is written too); so does ``_``, which
    :meth:`TextAnalyzer.__call__` replaces by a space beforehand. Three
    exceptions keep a name whole that splitting would destroy, since its
    one-letter pieces are too short to be terms:

    - a single letter joined by a hyphen to a word: ``k-pop``, ``j-pop``, ``x-ray``;
    - two words of one or two letters around a slash: ``ac/dc``, ``w/o``
      (``rock/pop`` still splits);
    - single letters between dots, an acronym: ``n.w.a``, ``m.i.a.``, ``r.e.m.``
      (:meth:`TextAnalyzer.__call__` drops the dots: ``nwa``, ``mia``, ``rem``,
      as the same names are written without them).
    """
    marks = [code for code in chain(range(0x20000), range(0xE0000, 0xE1000))  # marks live in planes 0, 1 and 14
             if unicodedata.category(chr(code)).startswith("M")]
    basic, supplementary = _char_class(c for c in marks if c < 0x10000), _char_class(c for c in marks if c >= 0x10000)
    # one class for the Basic Multilingual Plane (a fast bitmap); the rarer supplementary marks only checked there
    part = rf"(?:[\w{basic}\u200c\u200d]+|(?=[\U00010000-\U0010ffff])[{supplementary}])+"
    letter = r"[^\W\d_]"
    acronym = rf"(?<![\w.]){letter}(?:\.{letter})+\.?(?!\w)"
    slashed = rf"(?<![\w/]){letter}{{1,2}}/{letter}{{1,2}}(?![\w/])"
    word = rf"(?:(?<![\w-]){letter}-(?=\w))?{part}(?:&{part})*"
    return (re.compile(rf"{acronym}|{slashed}|{word}"),
            re.compile(rf".[{basic}{supplementary}]*", re.DOTALL))


def _char_class(codes: Iterable[int]) -> str:
    """The body of a regex character class matching exactly ``codes`` (sorted code points)."""
    return "".join(rf"\U{low:08x}-\U{high:08x}" for low, high in _ranges(codes))


def _ranges(codes: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted code points -> inclusive ``(low, high)`` ranges."""
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return [(low, high) for low, high in ranges]


class TextDocument(NamedTuple):
    """A text and its language: a code or name (normalized when analyzed), ``""`` when unknown."""

    text: str
    language: str = ""


@dataclass
class TextAnalyzer:
    """Unicode word tokens, folded, minus the stop words of each document's own language.

    A document is a :class:`TextDocument` (or a ``(text, language)`` tuple) or a
    plain string, which has no language and so no stop words (``max_df`` handles
    frequent words). Tokens keep digits and inner ``&`` (``80s``, ``u2``,
    ``r&b``, ``2pac``, ``1999``, ``33⅓``), a one-letter prefix (``k-pop``), short
    slashed names (``ac/dc``) and dotted acronyms without their dots (``n.w.a`` ->
    ``nwa``); runs of scripts written without spaces (Han, kana, Thai, Lao,
    Khmer, Myanmar) become character n-grams.

    Parameters
    ----------
    stop_words : dict[str, list[str]]
        Words to drop by language code (folded before use); the list under
        ``"*"`` applies to every document. A flat list (spaces built before
        per-language lists) is read as ``{"*": list}``, with a warning.
    char_ngrams : tuple[int, int] or None
        When set, terms are character n-grams of each (padded) word instead of words.
    min_length : int
        Shortest word kept (in code points).
    unspaced_ngrams : int
        n of the character n-grams of runs of unspaced scripts (grapheme
        clusters: a letter with its marks); a shorter run is one term.

    Examples
    --------
    >>> analyzer = TextAnalyzer(stop_words={"de": ["die", "war"]})
    >>> analyzer(TextDocument("Die Platte war ein Hit der 80s", "de"))
    ['platte', 'ein', 'hit', 'der', '80s']
    >>> analyzer(TextDocument("The war song: R&B by 2Pac", "en"))
    ['the', 'war', 'song', 'r&b', 'by', '2pac']
    >>> analyzer("東京の音楽")
    ['東京', '京の', 'の音', '音楽']
    """

    stop_words: dict[str, list[str]] = field(default_factory=dict)
    char_ngrams: tuple[int, int] | None = None
    min_length: int = 2
    unspaced_ngrams: int = 2
    kind: str = "text"

    def __post_init__(self) -> None:
        if not isinstance(self.stop_words, dict):
            logger.warning("text analyzer with one stop-word list for every document (a space built by an older "
                           "musicrep): applied as built; rebuild the space for per-language stop words")
            self.stop_words = {EVERY_LANGUAGE: list(self.stop_words)}
        self._every = frozenset(fold(w) for w in self.stop_words.get(EVERY_LANGUAGE, ()))
        self._stop = {normalize_language(lang): self._every | {fold(w) for w in words}
                      for lang, words in self.stop_words.items() if lang != EVERY_LANGUAGE}
        if self.char_ngrams is not None:
            self.char_ngrams = (int(self.char_ngrams[0]), int(self.char_ngrams[1]))
        if self.unspaced_ngrams < 1:
            raise UsageError(f"unspaced_ngrams must be at least 1 (got {self.unspaced_ngrams})")

    def __call__(self, document: object) -> list[str]:
        """The terms of one document, in text order.

        Parameters
        ----------
        document : TextDocument, (text, language) or str
            A plain string has no language: no stop words are removed from it.

        Returns
        -------
        list[str]
            Words (or their character n-grams) and the n-grams of unspaced runs.
        """
        text, language = _text_and_language(document)
        stop = self._stop.get(normalize_language(language), self._every)
        words, clusters = _patterns()
        folded = fold(text).replace("_", " ")
        unspaced = _UNSPACED_CHAR.search(folded) is not None
        terms: list[str] = []
        for token in words.findall(folded):
            token = token.replace(".", "")  # an acronym's dots (no other token holds one)
            for run, word in _UNSPACED_RUNS.findall(token) if unspaced else (("", token),):
                if run:
                    terms.extend(self._run_grams(clusters.findall(run)))
                elif len(word) >= self.min_length and word not in stop:
                    terms.extend(self._word_terms(word))
        return terms

    def _run_grams(self, clusters: list[str]) -> list[str]:
        """Character n-grams of a run of an unspaced script."""
        n = self.unspaced_ngrams
        if len(clusters) <= n:
            return ["".join(clusters)]
        return ["".join(clusters[i:i + n]) for i in range(len(clusters) - n + 1)]

    def _word_terms(self, word: str) -> list[str]:
        """The word itself, or the character n-grams of the padded word."""
        if self.char_ngrams is None:
            return [word]
        low, high = self.char_ngrams
        padded = f" {word} "
        return [padded[i:i + n] for n in range(low, high + 1) for i in range(max(1, len(padded) - n + 1))]

    def documents(self, frame: pd.DataFrame) -> tuple[list[object], dict[int, str]]:
        """One :class:`TextDocument` per row (``text``, normalized ``language``); rows without text are missing."""
        texts = frame["text"].fillna("").astype(str).tolist()
        languages = frame["language"].fillna("").astype(str).tolist() if "language" in frame else [""] * len(texts)
        missing = {row: "no text" for row, text in enumerate(texts) if not text.strip()}
        docs: list[object] = [TextDocument(text, normalize_language(lang))
                              for text, lang in zip(texts, languages, strict=True)]
        return docs, missing

    def to_dict(self) -> dict:
        data = asdict(self)
        data["char_ngrams"] = list(self.char_ngrams) if self.char_ngrams else None
        return data


def _text_and_language(document: object) -> tuple[str, str]:
    """``(text, language)`` of a :class:`TextDocument`, a pair, or a plain string (no language)."""
    if isinstance(document, tuple):
        text, language = document
        return str(text), str(language or "")
    return str(document), ""


def stop_words_for(languages: Iterable[str]) -> dict[str, list[str]]:
    """The shipped stop words of each of ``languages`` that has a list, folded and sorted.

    Parameters
    ----------
    languages : iterable of str
        Language codes or names, normalized with :func:`normalize_language`.

    Returns
    -------
    dict[str, list[str]]
        ``{code: words}``; languages without a shipped list are left out.
    """
    codes = sorted({normalize_language(lang) for lang in languages} & STOP_WORDS.keys())
    return {code: sorted({fold(w) for w in STOP_WORDS[code]}) for code in codes}


ANALYZERS: dict[str, type] = {"tags": TagAnalyzer, "text": TextAnalyzer}


def make_analyzer(description: dict) -> Analyzer:
    """Rebuild an analyzer from its ``to_dict()`` form."""
    params = dict(description)
    kind = params.pop("kind", None)
    if kind not in ANALYZERS:
        raise InputError(f"unknown analyzer kind {kind!r} (known: {', '.join(ANALYZERS)})")
    if params.get("char_ngrams") is not None:
        params["char_ngrams"] = tuple(params["char_ngrams"])
    return ANALYZERS[kind](**params)
