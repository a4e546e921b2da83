"""Analyzers turn a manifest track into the terms of a target space.

Registered by kind (``tags``, ``text``); a space's ``model.json`` stores the
kind and every parameter (stop words included), so new items are analyzed
exactly as the training items were.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Protocol

import pandas as pd

from musicrep.errors import InputError
from musicrep.manifest import tag_column
from musicrep.targets.stopwords import STOP_WORDS

_TOKEN = re.compile(r"[^\W\d_]+")  # letters only: elisions (l'album, d'un) split off


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


def fold(text: str) -> str:
    """Case-fold and strip accents (``"Fröhlich"`` -> ``"frohlich"``), language-independent."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass
class TextAnalyzer:
    """Unicode word tokens, accent-folded, optional stop words, optional character n-grams.

    Parameters
    ----------
    stop_words : list[str]
        Folded words to drop (the shipped lists of the languages present).
    char_ngrams : tuple[int, int] or None
        When set, terms are character n-grams of each (padded) word instead of words.
    min_length : int
        Shortest word kept.
    """

    stop_words: list[str] = field(default_factory=list)
    char_ngrams: tuple[int, int] | None = None
    min_length: int = 2
    kind: str = "text"

    def __post_init__(self) -> None:
        self._stop = frozenset(self.stop_words)
        if self.char_ngrams is not None:
            self.char_ngrams = (int(self.char_ngrams[0]), int(self.char_ngrams[1]))

    def __call__(self, document: object) -> list[str]:
        words = [w for w in _TOKEN.findall(fold(str(document)))
                 if len(w) >= self.min_length and w not in self._stop]
        if self.char_ngrams is None:
            return words
        low, high = self.char_ngrams
        grams = []
        for word in words:
            padded = f" {word} "
            for n in range(low, high + 1):
                grams.extend(padded[i:i + n] for i in range(max(1, len(padded) - n + 1)))
        return grams

    def documents(self, frame: pd.DataFrame) -> tuple[list[object], dict[int, str]]:
        texts = frame["text"].fillna("").astype(str).tolist()
        missing = {row: "no text" for row, text in enumerate(texts) if not text.strip()}
        return texts, missing

    def to_dict(self) -> dict:
        data = asdict(self)
        data["char_ngrams"] = list(self.char_ngrams) if self.char_ngrams else None
        return data


def stop_words_for(languages: list[str]) -> list[str]:
    """The shipped stop words of ``languages`` (ISO 639-1), folded and sorted."""
    return sorted({fold(w) for lang in languages for w in STOP_WORDS.get(lang, ())})


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
