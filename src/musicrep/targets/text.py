"""The text space (SAC 2020): TF-IDF + LSI over unstructured multilingual text.

No translation and no downloaded model: the space is language-agnostic by
co-occurrence (names, style terms and shared vocabulary tie languages
together). Tokens are Unicode words with their digits and inner ``&`` (``80s``,
``u2``, ``r&b``, ``1999``), case-folded, with the diacritics of Latin, Greek
and Cyrillic letters removed and every other script kept intact; runs of
scripts written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Myanmar)
become character bigrams. Each document loses the shipped stop words of its
own language (the manifest's ``language``, normalized: ``en-US``, ``eng``,
``English`` -> ``en``) and no others; a document without a language loses
none. ``max_df`` drops what is left of function words; character n-grams of
words are optional.
"""

from __future__ import annotations

from pathlib import Path

from musicrep.data.manifest import Manifest
from musicrep.errors import UsageError
from musicrep.fileio import ensure_dir
from musicrep.targets.analyzers import TextAnalyzer, stop_words_for
from musicrep.targets.space import build_space
from musicrep.targets.stopwords import normalize_language
from musicrep.targets.tags import SpacesReport, train_mask

TEXT = "text"


def embed_text(
    manifest: Manifest, train_ids: list[str], out_dir: str | Path, *, dims: int = 300, min_df: int = 2,
    max_df: float = 0.5, max_features: int | None = 200_000, stop_words: bool = True,
    char_ngrams: tuple[int, int] | None = None, seed: int = 0,
) -> SpacesReport:
    """Build the ``text`` space from the manifest's ``text`` column, fitted on the training tracks.

    Parameters
    ----------
    min_df, max_df, max_features
        Vocabulary caps: terms in fewer than ``min_df`` distinct training texts,
        or in more than ``max_df`` of them, are dropped; at most ``max_features`` terms.
    stop_words : bool
        Remove from each document the shipped stop words of its own language
        (en, de, fr, es, it, pt, nl); texts in other languages or without one keep every word.
    char_ngrams : (low, high), optional
        Use character n-grams of words instead of words.
    """
    frame = manifest.frame
    if not (frame["text"].str.strip() != "").any():
        raise UsageError(f"{manifest.path}: no track has text")
    checks = [
        (dims >= 1, f"--dims must be at least 1 (got {dims})"),
        (min_df >= 1, f"--min-df must be at least 1 (got {min_df})"),
        (0 < max_df <= 1, f"--max-df must be in (0, 1] (got {max_df})"),
        (max_features is None or max_features >= 1, f"--max-features must be at least 1 (got {max_features})"),
        (char_ngrams is None or 1 <= char_ngrams[0] <= char_ngrams[1],
         f"--char-ngrams must be LOW,HIGH with 1 <= LOW <= HIGH (got {','.join(map(str, char_ngrams or ()))})"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    out = ensure_dir(out_dir)
    train, unknown = train_mask(manifest, train_ids)
    languages = sorted({code for code in map(normalize_language, frame["language"]) if code})
    analyzer = TextAnalyzer(stop_words=stop_words_for(languages) if stop_words else {}, char_ngrams=char_ngrams)
    params = {"min_df": min_df, "max_df": max_df, "max_features": max_features, "languages": languages,
              "seed": seed, "manifest": str(manifest.path.resolve()) if manifest.path else None}
    folder = build_space(frame, train, analyzer, out_dir=out, name=TEXT, dims=dims, fit_unique=True,
                         min_df=min_df, max_df=max_df, max_features=max_features, seed=seed, params=params,
                         flags=("--min-df", "--max-df"))
    return SpacesReport(spaces=[folder], unknown_train_ids=unknown)
