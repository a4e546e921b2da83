from __future__ import annotations

import hashlib

import librosa
import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from musicrep.data.align import align
from musicrep.data.sources.demo import GENRES, MOODS, STYLES, DemoSource, plan_collection


def test_collection_shape(demo):
    frame = demo.manifest.frame
    assert demo.manifest.tagsets == ["genres", "styles", "moods", "themes"]
    assert set(frame.format.dropna()) >= {"wav", "flac", "ogg", "mp3"}
    assert set(frame.sample_rate.dropna()) == {22050, 44100, 48000}
    assert set(frame.channels.dropna()) == {1, 2}
    durations = frame.duration.dropna()
    assert (durations > 14).sum() >= 10 and durations.max() <= 40
    assert set(frame.language) == {"", "en", "de", "fr", "es", "mul"}
    assert (frame.text != "").mean() > 0.5 and (frame.text == "").any()
    two_languages = frame.text.str.contains("\n\n")
    assert two_languages.any()
    # an album reviewed in two languages is labelled "mul" (multiple), not with its first review's language
    assert (frame.language[two_languages] == "mul").all() and (frame.language[~two_languages] != "mul").all()
    styles = {s for tags in frame.tags_styles for s in tags}
    assert styles <= set(STYLES) and len(styles) >= 10
    for tags_g, tags_s in zip(frame.tags_genres, frame.tags_styles, strict=True):
        assert all(STYLES[s][0] in tags_g for s in tags_s)  # each style belongs to the track's genre
    # an artist has one consistent genre (the timbre signature is per artist)
    assert (frame.groupby("artist").tags_genres.apply(lambda g: len({tuple(x) for x in g})) == 1).all()


def test_every_kind_of_broken_file_is_planted_and_reported(demo):
    kinds = set(demo.report.expected_problems.values())
    assert kinds == {"empty", "truncated", "not audio", "silent", "short", "missing"}
    reasons = {demo.report.expected_problems[p.track_id]: p for p in demo.report.problems}
    assert reasons["empty"].reason == "empty file" and reasons["empty"].action == "kept"
    assert reasons["not audio"].reason == "not a readable audio file (format not recognised)"
    assert reasons["missing"].action == "dropped"
    assert demo.report.unexpected_problems == []
    ids = set(demo.manifest.frame.track_id)
    by_kind = {kind: tid for tid, kind in demo.report.expected_problems.items()}
    assert by_kind["empty"] in ids and by_kind["truncated"] in ids and by_kind["missing"] not in ids
    short = demo.manifest.frame.set_index("track_id").loc[by_kind["short"]]
    assert short.duration == pytest.approx(0.1, abs=0.01)


def test_reviews_use_synonyms_and_anchors(demo):
    frame = demo.manifest.frame
    reviewed = frame[frame.text != ""]
    # style names and album names are language-independent anchors
    assert any(s in text for text, styles in zip(reviewed.text, reviewed.tags_styles, strict=True) for s in styles)
    assert all(album in text for album, text in zip(reviewed.album, reviewed.text, strict=True))
    # moods appear through synonyms, never by their tag name
    assert not any(f" {m} " in f" {t.lower()} " for t in reviewed.text for m in ("happy", "uplifting"))
    assert reviewed.text.str.contains("é|ü|ö|ñ|í").any()


def test_deterministic_and_independent_of_process_count(tmp_path):
    align(DemoSource(tracks=12, seed=7, jobs=1), tmp_path / "a")
    align(DemoSource(tracks=12, seed=7, jobs=2), tmp_path / "b")

    def digest(root):
        return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
                for p in sorted((root / "audio").rglob("*")) if p.is_file()}

    assert digest(tmp_path / "a") == digest(tmp_path / "b") and len(digest(tmp_path / "a")) == 12
    assert plan_collection(30, 1)[0] != plan_collection(30, 2)[0]


def _mfcc_stats(manifest):
    rows, feats = [], []
    for i, row in manifest.frame.iterrows():
        if not row.duration or np.isnan(row.duration) or row.duration < 1:
            continue
        y, sr = librosa.load(manifest.audio_file(row.audio_path), sr=22050, mono=True, duration=20)
        if not np.any(y):
            continue
        mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
        feats.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
        rows.append(i)
    return np.array(feats), manifest.frame.loc[rows]


@pytest.mark.slow
def test_tags_are_audible(demo):
    """5-NN on standardized MFCC mean+std, grouped by artist: genre >= 2/n, mood >= 1.3/n."""
    features, frame = _mfcc_stats(demo.manifest)
    groups = np.asarray(frame.artist, dtype=object)
    for tagset, n_labels, factor in (("genres", len(GENRES), 2.0), ("moods", len(MOODS), 1.3)):
        labels = frame[f"tags_{tagset}"].map(lambda t: t[0] if len(t) else "")
        keep = (labels != "").to_numpy()
        y = np.asarray(labels[keep], dtype=object)
        model = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5))
        predicted = cross_val_predict(model, features[keep], y, groups=groups[keep], cv=GroupKFold(n_splits=5))
        score = balanced_accuracy_score(y, predicted)
        assert score >= factor / n_labels, f"{tagset}: balanced accuracy {score:.3f} < {factor}/{n_labels}"
