"""The text analyzer on real multilingual sentences: folding, tokens, unspaced scripts, per-language stop words."""

from __future__ import annotations

import json
import logging

import pytest

from musicrep.data.manifest import Track
from musicrep.errors import UsageError
from musicrep.targets.analyzers import TextAnalyzer, TextDocument, fold, make_analyzer, stop_words_for
from musicrep.targets.space import load_space
from musicrep.targets.stopwords import normalize_language
from musicrep.targets.text import embed_text
from test_targets import _small_manifest

SHIPPED = stop_words_for(["en", "de", "fr", "es", "it", "pt", "nl"])


def _terms(text: str, language: str = "") -> list[str]:
    return TextAnalyzer(stop_words=SHIPPED)(TextDocument(text, language))


def test_fold_strips_latin_greek_and_cyrillic_diacritics():
    assert fold("Fröhlich ÉTÉ Ñandú Straße") == "frohlich ete nandu strasse"
    assert fold("Η ΜΟΥΣΙΚΉ ΕΊΝΑΙ ΥΠΈΡΟΧΗ") == "η μουσικη ειναι υπεροχη"
    assert fold("Ёлка") == "елка"
    assert fold("ＡＢＣ ﬁne") == "abc fine"  # compatibility forms unified


def test_fold_keeps_other_scripts_intact():
    for text in ("संगीत बहुत अच्छा है", "ギター", "เพลงนี้เพราะมาก", "שִׁיר יָפֶה", "موسيقى رائعة", "音楽", "음악이"):
        assert fold(text) == text
    assert fold("ｷﾞﾀｰ") == "ギター"  # half-width katakana composed, dakuten kept
    assert fold("ギター") != fold("キター")


def test_latin_greek_cyrillic_words():
    assert _terms("The war was over, but die-hard fans stayed.", "en") == ["war", "die", "hard", "fans", "stayed"]
    assert _terms("C'est l'album le plus rock'n'roll de son époque", "fr") == ["album", "plus", "rock", "roll",
                                                                               "epoque"]
    assert _terms("Η μουσική του δίσκου είναι υπέροχη", "el") == ["μουσικη", "του", "δισκου", "ειναι", "υπεροχη"]
    assert _terms("Это лучший альбом группы", "ru") == ["это", "лучшии", "альбом", "группы"]


def test_digits_and_ampersand_survive():
    assert _terms("Die 80s: R&B, U2 und 2Pac im Jahr 1999 (Platz 5)", "de") == [
        "80s", "r&b", "u2", "2pac", "jahr", "1999", "platz"]
    assert _terms("Simon & Garfunkel, AC/DC and MP3s", "en") == ["simon", "garfunkel", "ac/dc", "mp3s"]
    assert _terms("hard_rock", "") == ["hard", "rock"]


def test_names_that_splitting_would_destroy_stay_whole():
    # a single letter hyphenated to a word; longer compounds still split, as they are also written apart
    assert _terms("K-pop, J-Pop and x-ray; hip-hop and die-hard", "en") == ["k-pop", "j-pop", "x-ray", "hip", "hop",
                                                                          "die", "hard"]
    # short names around a slash stay one term; longer words around one still split
    assert _terms("AC/DC, rock/pop and w/o", "en") == ["ac/dc", "rock", "pop", "w/o"]
    # dotted acronyms are one term without their dots, as the same names are written without them
    assert _terms("N.W.A, M.I.A. and R.E.M. (NWA)", "en") == ["nwa", "mia", "rem", "nwa"]
    assert _terms("The end.A new start, St. Vincent", "en") == ["end", "new", "start", "st", "vincent"]
    # a vulgar fraction is not glued to its number by NFKC ("331⁄3")
    assert fold("33⅓") == "33⅓" and _terms("Played at 33⅓ rpm", "en") == ["played", "33⅓", "rpm"]
    # elisions still split off
    assert _terms("l'album d'AC/DC", "fr") == ["album", "ac/dc"]


def test_devanagari_words_stay_whole():
    assert _terms("संगीत बहुत अच्छा है", "hi") == ["संगीत", "बहुत", "अच्छा", "है"]
    assert _terms("নতুন গান", "bn") == ["নতুন", "গান"]  # Bengali
    assert _terms("𑄌𑄋𑄴𑄟", "ccp") == ["𑄌𑄋𑄴𑄟"]  # Chakma: marks outside the Basic Multilingual Plane


def test_unspaced_scripts_become_bigrams():
    assert _terms("このギターのサウンドは素晴らしい", "ja") == (
        "この のギ ギタ ター ーの のサ サウ ウン ンド ドは は素 素晴 晴ら らし しい".split())
    assert _terms("这张专辑的音乐很好听", "zh") == "这张 张专 专辑 辑的 的音 音乐 乐很 很好 好听".split()
    # Thai bigrams are of letters with their vowel and tone marks
    assert _terms("เพลงนี้เพราะมาก", "th") == ["เพ", "พล", "ลง", "งนี้", "นี้เ", "เพ", "พร", "รา", "าะ", "ะม", "มา",
                                            "าก"]
    assert _terms("ギター", "ja") == ["ギタ", "ター"] and _terms("キター", "ja") == ["キタ", "ター"]
    assert _terms("U2の新作、最高", "ja") == ["u2", "の新", "新作", "最高"]
    assert _terms("U2の歌", "ja") == ["u2", "の歌"] and _terms("歌", "ja") == ["歌"]  # a short run is one term
    assert _terms("ສຽງດົນຕີ", "lo") == ["ສຽ", "ຽງ", "ງດົ", "ດົນ", "ນຕີ"]  # Lao
    assert _terms("음악이 정말 좋아요", "ko") == ["음악이", "정말", "좋아요"]  # Hangul is written with spaces


def test_each_document_gets_its_own_languages_stop_words():
    english = "Die hard fans: war songs, a man and his hat. His son sang without sin."
    assert _terms(english, "en") == ["die", "hard", "fans", "war", "songs", "man", "hat", "son", "sang", "without",
                                     "sin"]
    assert _terms("Die Platte war ein Hit, man hat sie geliebt", "de") == ["platte", "hit", "geliebt"]
    assert _terms("Su hijo canta sin miedo", "es") == ["hijo", "canta", "miedo"]
    assert _terms("Son album est un classique", "fr") == ["album", "classique"]
    # no language (a free-text query): no stop words at all
    assert TextAnalyzer(stop_words=SHIPPED)("Die Band war gut") == ["die", "band", "war", "gut"]
    assert _terms("Die Band war gut", "") == ["die", "band", "war", "gut"]
    assert _terms("Die Band war gut", "ja") == ["die", "band", "war", "gut"]  # a language without a list
    for tag in ("de", "de-AT", "DE", "ger", "deu", "German", "deutsch"):
        assert _terms("Die Band war gut", tag) == ["band", "gut"]


def test_normalize_language():
    cases = {"en": "en", "en-US": "en", "en_GB": "en", "EN": "en", "eng": "en", "English": "en",
             "ger": "de", "deu": "de", "German": "de", "fra": "fr", "fre": "fr", "Français": "fr",
             "spa": "es", "Español": "es", "es-419": "es", "ita": "it", "por": "pt", "pt-BR": "pt",
             "nld": "nl", "dut": "nl", "ja-JP": "ja", "hi": "hi", "zh-Hant-TW": "zh", "": "", " ": "",
             "und": "", "mul": "",
             # ISO 639-2/3 codes and names of languages without a shipped list, names with a region
             "jpn": "ja", "Japanese": "ja", "zho": "zh", "chi": "zh", "kor": "ko", "rus": "ru", "ara": "ar",
             "hin": "hi", "swe": "sv", "English (US)": "en", "Portuguese (Brazil)": "pt", "Chinese (Traditional)": "zh",
             "en (GB)": "en"}
    assert {tag: normalize_language(tag) for tag in cases} == cases
    assert normalize_language(None) == ""


def test_stop_words_for_keeps_lists_apart():
    lists = stop_words_for(["en-US", "German", "ja", ""])
    assert sorted(lists) == ["de", "en"]
    assert "war" in lists["de"] and "war" not in lists["en"]
    assert "fur" in lists["de"]  # folded like the tokens


def test_round_trip_and_older_spaces(caplog):
    analyzer = TextAnalyzer(stop_words=stop_words_for(["en", "de"]), char_ngrams=(3, 3))
    rebuilt = make_analyzer(json.loads(json.dumps(analyzer.to_dict())))
    document = TextDocument("Die Band war R&B", "de")
    assert rebuilt(document) == analyzer(document) == [" ba", "ban", "and", "nd ", " r&", "r&b", "&b "]
    assert rebuilt(TextDocument("Die Band war R&B", "en"))[:3] == [" di", "die", "ie "]
    # a space built before per-language lists stored one flat list, applied to every document: still so
    with caplog.at_level(logging.WARNING, logger="musicrep.targets.analyzers"):
        old = make_analyzer({"kind": "text", "stop_words": ["der", "war"], "char_ngrams": None, "min_length": 2})
    assert "one stop-word list for every document" in caplog.text
    assert old("Der Krieg war aus") == old(TextDocument("Der Krieg war aus", "en")) == ["krieg", "aus"]
    assert old.to_dict()["stop_words"] == {"*": ["der", "war"]}


def test_embed_text_applies_each_documents_language(tmp_path):
    texts = [
        ("en", "English", "The war of the bands: die hard fans and the 80s R&B of 2Pac."),
        ("de", "de-DE", "Die Platte hat Geschichte: ein Hit der 80s und R&B wie 2Pac."),
        ("hi", "hi", "संगीत बहुत अच्छा है"),
        ("ja", "ja-JP", "このギターのサウンドは素晴らしい"),
    ]
    tracks = [Track(f"{code}{i}", f"{code}{i}.wav", album=code, text=text, language=language,
                    tags={"genres": ["rock"]})
              for code, language, text in texts for i in range(2)]
    manifest = _small_manifest(tmp_path, tracks)
    embed_text(manifest, [t.track_id for t in tracks], tmp_path / "spaces", dims=4, min_df=1, max_df=1.0)
    space = load_space(tmp_path / "spaces" / "text")
    vocabulary = set(space.model.vocabulary)
    # English keeps "war" and "die" (German stop words); German loses "die" and "hat"; "der" is German-only
    assert {"war", "die", "hard", "80s", "r&b", "2pac", "platte", "geschichte"} <= vocabulary
    assert not {"the", "of", "and", "hat", "der", "ein", "und", "wie"} & vocabulary
    assert {"संगीत", "अच्छा", "ギタ", "ター", "素晴"} <= vocabulary
    model = json.loads((tmp_path / "spaces" / "text" / "model.json").read_text())
    assert sorted(model["analyzer"]["stop_words"]) == ["de", "en"]
    assert model["params"]["languages"] == ["de", "en", "hi", "ja"]
    assert len(space.ids) == len(tracks)
    # the language travels from the manifest with each document
    documents, _ = space.model.analyzer.documents(manifest.frame)
    assert documents[0] == TextDocument(texts[0][2], "en") and documents[2] == TextDocument(texts[1][2], "de")
    assert space.model.analyzer(documents[0])[:4] == ["war", "bands", "die", "hard"]
    assert space.model.analyzer(documents[2])[:3] == ["platte", "geschichte", "hit"]
    # projecting new documents: a query without a language keeps every word; "war" is a German stop word
    _, has_terms = space.model.project(["war", TextDocument("war", "de"), TextDocument("war", "en-GB")])
    assert has_terms.tolist() == [True, False, True]


@pytest.mark.parametrize("bad", [0, -1])
def test_unspaced_ngrams_must_be_positive(bad):
    with pytest.raises(UsageError, match="unspaced_ngrams must be at least 1"):
        TextAnalyzer(unspaced_ngrams=bad)


def test_a_text_joined_from_two_languages_keeps_each_languages_words(tmp_path):
    from musicrep.data.manifest import Manifest, conform_frame, write_manifest
    from musicrep.data.sources.demo import TAGSETS, plan_collection, plan_frame

    plan, _ = plan_collection(12, 0)
    albums = list(dict.fromkeys((t.artist, t.album) for t in plan))
    reviews = {albums[0]: [("de", "Die Platte ist ein Hit."), ("en", "The war is over: a great record.")],
               albums[1]: [("en", "Another record entirely.")]}
    frame = conform_frame(plan_frame(plan, reviews), list(TAGSETS), normalize_tags=True)
    assert set(frame.language[frame.text != ""]) == {"mul", "en"}
    manifest = Manifest(frame=frame, tagsets=list(TAGSETS), audio_root=tmp_path)
    write_manifest(manifest, tmp_path / "manifest.parquet")
    embed_text(manifest, frame.track_id.tolist(), tmp_path / "spaces", dims=2, min_df=1, max_df=1.0)
    vocabulary = set(load_space(tmp_path / "spaces" / "text").model.vocabulary)
    # "war" is a German stop word, but here it is English: labelled "de", the joined text would lose it
    assert {"war", "platte", "hit", "great", "another"} <= vocabulary
    assert "the" in vocabulary  # no single language's list for a "mul" text (max_df handles function words)
