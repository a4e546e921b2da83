"""Small stop-word lists shipped with musicrep (no download), by ISO 639-1 code.

Function words only; domain words are left to TF-IDF and ``max_df``. A
document gets the list of its own language only; :func:`normalize_language`
maps the manifest's ``language`` values (``en-US``, ``eng``, ``English``) to
these codes.
"""

from __future__ import annotations

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

# ISO 639-2/3 codes and names (English and native) of the shipped languages.
_ALIASES: dict[str, tuple[str, ...]] = {
    "en": ("eng", "english"),
    "de": ("deu", "ger", "german", "deutsch"),
    "fr": ("fra", "fre", "french", "français", "francais"),
    "es": ("spa", "spanish", "español", "espanol", "castellano"),
    "it": ("ita", "italian", "italiano"),
    "pt": ("por", "portuguese", "português", "portugues"),
    "nl": ("nld", "dut", "dutch", "nederlands"),
}
LANGUAGE_CODES: dict[str, str] = {alias: code for code, aliases in _ALIASES.items() for alias in aliases}
NO_LANGUAGE = frozenset({"und", "mul", "zxx", "mis"})  # ISO 639 codes for "no single language"


@lru_cache(maxsize=1024)
def normalize_language(value: str | None) -> str:
    """One language code per language: the primary subtag, lower-cased, aliases of the shipped languages mapped.

    ``"en-US"``, ``"EN"``, ``"eng"`` and ``"English"`` all give ``"en"``; other
    codes keep their primary subtag (``"ja-JP"`` -> ``"ja"``); empty values and
    ``und``/``mul``/``zxx``/``mis`` give ``""`` (no language).

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
    >>> [normalize_language(v) for v in ("en_GB", "ger", "Français", "pt-BR", "und", "")]
    ['en', 'de', 'fr', 'pt', '', '']
    """
    primary = str(value or "").strip().casefold().replace("_", "-").split("-", 1)[0]
    if primary in NO_LANGUAGE:
        return ""
    return LANGUAGE_CODES.get(primary, primary)
