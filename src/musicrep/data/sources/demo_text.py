"""Album reviews of the demo collection, in English, German, French and Spanish.

Reviews describe moods through language-specific synonyms and name styles,
artists and albums verbatim (the language-independent anchors a TF-IDF/LSI
space can pick up), amid filler sentences that say nothing about the music.
"""

from __future__ import annotations

import numpy as np

LANGUAGES = ("en", "de", "fr", "es")

MOOD_WORDS: dict[str, dict[str, list[str]]] = {
    "happy": {"en": ["joyful", "cheerful", "sunny"], "de": ["fröhlich", "heiter", "beschwingt"],
              "fr": ["joyeux", "gai", "enjoué"], "es": ["alegre", "feliz", "risueño"]},
    "sad": {"en": ["mournful", "sorrowful", "tearful"], "de": ["traurig", "wehmütig", "betrübt"],
            "fr": ["triste", "mélancolique", "chagrin"], "es": ["triste", "apenado", "lloroso"]},
    "aggressive": {"en": ["furious", "violent", "brutal"], "de": ["aggressiv", "wütend", "brachial"],
                   "fr": ["agressif", "furieux", "brutal"], "es": ["agresivo", "furioso", "violento"]},
    "calm": {"en": ["peaceful", "serene", "tranquil"], "de": ["ruhig", "gelassen", "friedlich"],
             "fr": ["calme", "serein", "paisible"], "es": ["tranquilo", "sereno", "apacible"]},
    "dark": {"en": ["gloomy", "sinister", "somber"], "de": ["düster", "finster", "dunkel"],
             "fr": ["sombre", "lugubre", "ténébreux"], "es": ["oscuro", "sombrío", "lúgubre"]},
    "uplifting": {"en": ["inspiring", "euphoric", "soaring"], "de": ["erhebend", "euphorisch", "mitreißend"],
                  "fr": ["exaltant", "euphorique", "entraînant"], "es": ["edificante", "eufórico", "inspirador"]},
    "dreamy": {"en": ["ethereal", "hazy", "floating"], "de": ["verträumt", "schwebend", "traumhaft"],
               "fr": ["rêveur", "éthéré", "vaporeux"], "es": ["soñador", "etéreo", "onírico"]},
    "tense": {"en": ["nervous", "anxious", "restless"], "de": ["angespannt", "nervös", "unruhig"],
              "fr": ["tendu", "nerveux", "angoissé"], "es": ["tenso", "nervioso", "inquieto"]},
}

GENRE_WORDS: dict[str, dict[str, str]] = {
    "rock": {"en": "rock", "de": "Rockmusik", "fr": "musique rock", "es": "música rock"},
    "electronic": {"en": "electronic music", "de": "elektronische Musik",
                   "fr": "musique électronique", "es": "música electrónica"},
    "jazz": {"en": "jazz", "de": "Jazz", "fr": "jazz", "es": "jazz"},
    "classical": {"en": "classical music", "de": "Klassik", "fr": "musique classique", "es": "música clásica"},
    "hip hop": {"en": "hip hop", "de": "Hip-Hop", "fr": "hip-hop", "es": "hip hop"},
    "folk": {"en": "folk", "de": "Volksmusik", "fr": "musique folk", "es": "música folk"},
}

_STYLE_SENTENCES = {
    "en": ["{artist} delivers a fine slice of {style} on {album}.",
           "The {style} influences are obvious from the first bars.",
           "Few records capture {style} this well."],
    "de": ["{artist} liefert mit {album} ein starkes Stück {style}.",
           "Die Einflüsse von {style} sind vom ersten Takt an hörbar.",
           "Selten wurde {style} so überzeugend eingefangen."],
    "fr": ["{artist} signe avec {album} un beau moment de {style}.",
           "Les influences {style} sont évidentes dès les premières mesures.",
           "Rares sont les disques qui saisissent aussi bien le {style}."],
    "es": ["{artist} entrega con {album} una gran muestra de {style}.",
           "Las influencias de {style} se notan desde los primeros compases.",
           "Pocos discos capturan el {style} tan bien."],
}
_MOOD_SENTENCES = {
    "en": ["The atmosphere is {mood} throughout.", "Most songs feel {mood} and {mood2}.",
           "A {mood} record of {genre}."],
    "de": ["Die Stimmung ist durchgehend {mood}.", "Die meisten Lieder klingen {mood} und {mood2}.",
           "Ein {mood}es Album der {genre}."],
    "fr": ["L'ambiance est {mood} du début à la fin.", "La plupart des morceaux sont {mood} et {mood2}.",
           "Un disque {mood} de {genre}."],
    "es": ["El ambiente es {mood} de principio a fin.", "La mayoría de las canciones suenan {mood} y {mood2}.",
           "Un disco {mood} de {genre}."],
}
_FILLER = {
    # proper nouns (studios, producers, cities, labels) are drawn per review, as in real reviews
    "en": ["Recorded at {place} Studio with producer {name}.", "Released by {label} Records in {place}.",
           "{name} designed the cover."],
    "de": ["Aufgenommen im Studio {place} mit Produzent {name}.", "Erschienen bei {label} Records in {place}.",
           "{name} gestaltete das Cover."],
    "fr": ["Enregistré au studio {place} avec le producteur {name}.", "Publié par {label} Records à {place}.",
           "{name} a dessiné la pochette."],
    "es": ["Grabado en el estudio {place} con el productor {name}.", "Publicado por {label} Records en {place}.",
           "{name} diseñó la portada."],
}
_SYLLABLES = ["bra", "ke", "lun", "mo", "tri", "vas", "zel", "dor", "quin", "pa", "ste", "gru", "fi", "wen"]


def _proper_noun(rng: np.random.Generator) -> str:
    return "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4)))).title()


def write_review(
    rng: np.random.Generator,
    *,
    language: str,
    artist: str,
    album: str,
    genre: str,
    styles: list[str],
    moods: list[str],
) -> str:
    """One album review in ``language`` mentioning its styles and moods amid filler.

    Returns
    -------
    str
        A few sentences; style, artist and album names appear verbatim, moods
        only through synonyms of the language.
    """
    sentences = []
    for number, style in enumerate(styles):
        # the first sentence always names artist and album: cross-language anchors; each style is named twice
        first = 0 if number == 0 else int(rng.integers(1, 3))
        second = 2 if first == 1 else 1
        for template in (_STYLE_SENTENCES[language][first], _STYLE_SENTENCES[language][second]):
            sentences.append(template.format(artist=artist, album=album, style=style))
    for mood in moods:
        words = MOOD_WORDS[mood][language]
        first, second = rng.choice(len(words), size=2, replace=False)
        template = rng.choice(_MOOD_SENTENCES[language])
        sentences.append(template.format(mood=words[first], mood2=words[second],
                                         genre=GENRE_WORDS[genre][language]))
    for template in rng.choice(_FILLER[language], size=int(rng.integers(1, 3)), replace=False):
        sentences.append(str(template).format(place=_proper_noun(rng), name=_proper_noun(rng),
                                              label=_proper_noun(rng)))
    order = rng.permutation(len(sentences))
    return " ".join(sentences[i] for i in order)
