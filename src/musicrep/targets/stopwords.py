"""Small stop-word lists shipped with musicrep (no download), by ISO 639-1 code.

Function words only; domain words are left to TF-IDF and ``max_df``. A
document gets the list of its own language only; :func:`normalize_language`
maps the manifest's ``language`` values (``en-US``, ``eng``, ``English``) to
these codes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

STOP_WORDS: dict[str, tuple[str, ...]] = {
    "en": tuple("""a about after all also an and any are as at be been but by can could do for from had has
        have he her his how i if in into is it its just more most my no not of on one or other our out over
        she so some such than that the their them then there these they this those through to too up very
        was we were what when which while who will with would you your""".split()),
    "de": tuple("""aber als also am an auch auf aus bei bin bis da damit das dass dem den der des die dies
        diese dieser doch du durch ein eine einem einen einer eines er es für hat hatte ich ihr im in ist ja
        kann man mit nach nicht noch nur ob oder sein sich sie sind so über um und uns von vor war wie wir
        wird wurde zu zum zur""".split()),
    "fr": tuple("""à au aux avec ce ces cette comme dans de des du elle en est et il ils je la le les leur
        lui mais me même mon ne nous on ou par pas pour qu que qui sa se ses son sont sur ta te tout très tu
        un une vous été être d l s c n qu""".split()),
    "es": tuple("""a al algo como con de del desde el ella en entre es esta este fue ha hay la las le les lo
        los más me mi muy no nos o para pero por que se ser si sin sobre su sus también te tu un una uno y ya
        ha sido son""".split()),
    "it": tuple("""a ai al alla anche che ci come con da dal dei del della di e è gli ha i il in la le lo ma
        mi ne nel non o per più se si sono su un una uno""".split()),
    "pt": tuple("""a ao aos as com como da das de do dos e é ela ele em entre foi isso mais mas na nas no
        nos o os ou para pela pelo por que se sem seu sua são também um uma""".split()),
    "nl": tuple("""aan al als bij dat de den der die dit door een en er het hij ik in is je maar met na
        naar niet nog of om ook op over te tot uit van voor was wat we wel werd zijn ze zich zo""".split()),
}

# ISO 639-2/3 codes and names (English and native) of the shipped languages ...
_ALIASES: dict[str, tuple[str, ...]] = {
    "en": ("eng", "english"),
    "de": ("deu", "ger", "german", "deutsch"),
    "fr": ("fra", "fre", "french", "français", "francais"),
    "es": ("spa", "spanish", "español", "espanol", "castellano"),
    "it": ("ita", "italian", "italiano"),
    "pt": ("por", "portuguese", "português", "portugues"),
    "nl": ("nld", "dut", "dutch", "nederlands"),
}
# ... and of other common languages (no stop words shipped; one code per language all the same).
_OTHER_ALIASES: dict[str, tuple[str, ...]] = {
    "ja": ("jpn", "japanese", "日本語"), "zh": ("zho", "chi", "cmn", "chinese", "mandarin", "中文"),
    "ko": ("kor", "korean", "한국어"), "ru": ("rus", "russian", "русский"), "ar": ("ara", "arabic", "العربية"),
    "hi": ("hin", "hindi", "हिन्दी"), "bn": ("ben", "bengali", "bangla"), "ur": ("urd", "urdu"),
    "fa": ("fas", "per", "persian", "farsi"), "tr": ("tur", "turkish", "türkçe"), "he": ("heb", "iw", "hebrew"),
    "el": ("ell", "gre", "greek"), "pl": ("pol", "polish", "polski"), "cs": ("ces", "cze", "czech"),
    "sk": ("slk", "slo", "slovak"), "sl": ("slv", "slovenian"), "hr": ("hrv", "croatian"), "sr": ("srp", "serbian"),
    "bg": ("bul", "bulgarian"), "uk": ("ukr", "ukrainian"), "ro": ("ron", "rum", "romanian"),
    "hu": ("hun", "hungarian", "magyar"), "fi": ("fin", "finnish", "suomi"), "et": ("est", "estonian"),
    "lv": ("lav", "latvian"), "lt": ("lit", "lithuanian"), "sv": ("swe", "swedish", "svenska"),
    "da": ("dan", "danish", "dansk"), "no": ("nor", "norwegian", "norsk"), "is": ("isl", "ice", "icelandic"),
    "ga": ("gle", "irish"), "cy": ("cym", "wel", "welsh"), "ca": ("cat", "catalan", "català"),
    "gl": ("glg", "galician"), "eu": ("eus", "baq", "basque"), "la": ("lat", "latin"),
    "af": ("afr", "afrikaans"), "sw": ("swa", "swahili"), "th": ("tha", "thai"), "vi": ("vie", "vietnamese"),
    "id": ("ind", "in", "indonesian"), "ms": ("msa", "may", "malay"), "tl": ("tgl", "tagalog"),
    "ta": ("tam", "tamil"), "te": ("tel", "telugu"), "mr": ("mar", "marathi"), "gu": ("guj", "gujarati"),
    "kn": ("kan", "kannada"), "ml": ("mal", "malayalam"), "pa": ("pan", "punjabi"), "lo": ("lao",),
    "km": ("khm", "khmer"), "my": ("mya", "bur", "burmese"),
}
LANGUAGE_CODES: dict[str, str] = {alias: code for table in (_ALIASES, _OTHER_ALIASES)
                                  for code, aliases in table.items() for alias in aliases}
NO_LANGUAGE = frozenset({"und", "mul", "zxx", "mis"})  # ISO 639 codes for "no single language"
MULTIPLE_LANGUAGES = "mul"
"""ISO 639 "multiple languages": the label of a text joined from texts in different languages."""
_PARENTHESES = re.compile(r"\([^)]*\)")


@lru_cache(maxsize=1024)
def normalize_language(value: str | None) -> str:
    """One language code per language: the primary subtag, lower-cased, ISO 639-2/3 codes and names mapped.

    ``"en-US"``, ``"EN"``, ``"eng"``, ``"English"`` and ``"English (US)"`` all
    give ``"en"``; ``"jpn"`` and ``"Japanese"`` give ``"ja"``, ``"zho"`` and
    ``"chi"`` give ``"zh"`` (the shipped languages and some fifty common ones);
    other codes keep their primary subtag (``"ja-JP"`` -> ``"ja"``); empty
    values and ``und``/``mul``/``zxx``/``mis`` give ``""`` (no language).

    Parameters
    ----------
    value : str or None
        A BCP 47 tag, an ISO 639-1/2/3 code, or a language name.

    Returns
    -------
    str
        The ISO 639-1 code of a shipped language, else the value's primary subtag; ``""`` for none.

    Examples
    --------
    >>> [normalize_language(v) for v in ("en_GB", "ger", "Français", "pt-BR", "English (US)", "jpn", "und", "")]
    ['en', 'de', 'fr', 'pt', 'en', 'ja', '', '']
    """
    text = _PARENTHESES.sub(" ", str(value or "")).strip().casefold().replace("_", "-")
    primary = text.split("-", 1)[0].strip()
    if primary in NO_LANGUAGE:
        return ""
    return LANGUAGE_CODES.get(primary, primary)


def manifest_language(value: str | None) -> str:
    """The ``language`` a manifest stores: :func:`normalize_language`, but ``mul`` stays ``mul``.

    A text in several languages keeps saying so (``musicrep info`` counts it);
    analyzers still give it no stop words, as for no language.

    Examples
    --------
    >>> [manifest_language(v) for v in ("en-US", "eng", "English (UK)", "mul", "und")]
    ['en', 'en', 'en', 'mul', '']
    """
    code = normalize_language(value)
    if not code and str(value or "").strip().casefold() == MULTIPLE_LANGUAGES:
        return MULTIPLE_LANGUAGES
    return code


def joined_language(languages: Sequence[str | None]) -> str:
    """The language label of a text joined from parts in ``languages`` (e.g. an album's reviews).

    The parts' common language (the first label as given) when they all
    normalize to the same code, else ``"mul"`` (multiple languages, so no
    stop-word list is applied to the whole): a part without a language counts
    as a language of its own, since nothing says it is in the others'.

    Examples
    --------
    >>> joined_language(["en", "en-US", "English"]), joined_language(["de", "en"]), joined_language([])
    ('en', 'mul', '')
    """
    codes = {normalize_language(lang) for lang in languages}
    if len(codes) > 1:
        return MULTIPLE_LANGUAGES
    return str(languages[0] or "").strip() if languages else ""
