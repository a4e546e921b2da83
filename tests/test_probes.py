"""Classification probes on small synthetic embeddings: metrics against scikit-learn and hand-computed values,
unscorable labels with reasons, single- vs multi-label, the probe's numpy forward, and the split readers' refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score
from sklearn.neural_network import MLPClassifier

from musicrep.errors import InputError
from musicrep.evaluation.classify import choose_thresholds
from musicrep.evaluation.probes import (
    MULTI,
    SINGLE,
    SPLITS,
    fit_probe,
    labels_of,
    probe_tagset,
    read_split,
    read_splits,
    score_labels,
)
from musicrep.inference.embed import write_embeddings

GENRES = ["jazz", "rock", "folk"]


def single_label_data(separable: bool, *, n: int = 60, dim: int = 8, seed: int = 0):
    """Three genres; separable: each genre shifts its own dimension by 4 standard deviations."""
    rng = np.random.default_rng(seed)
    vectors, labels = {}, {}
    for split in SPLITS:
        names = [GENRES[i % 3] for i in range(n)]
        x = rng.normal(size=(n, dim))
        if separable:
            x[np.arange(n), [GENRES.index(g) for g in names]] += 4.0
        vectors[split], labels[split] = x, [[g] for g in names]
    return vectors, labels


def multi_label_data(separable: bool, *, n: int = 80, dim: int = 6, seed: int = 0):
    """Labels a, b, c; a track has label j when dimension j is positive (separable) or at random."""
    rng = np.random.default_rng(seed)
    vectors, labels = {}, {}
    for split in SPLITS:
        x = rng.normal(size=(n, dim))
        decider = x if separable else rng.normal(size=(n, dim))
        labels[split] = [[name for j, name in enumerate("abc") if decider[i, j] > 0] for i in range(n)]
        vectors[split] = x
    return vectors, labels


# ------------------------------------------------------------------------------------------ metrics


def test_single_label_separable_and_random_against_sklearn():
    vectors, labels = single_label_data(separable=True)
    result = probe_tagset(vectors, labels, tagset="genres")
    assert result.kind == SINGLE
    assert result.metrics == {"accuracy": 1.0, "macro_f1": 1.0, "roc_auc": 1.0}
    assert result.unscorable == [] and result.chosen["val_score"] == 1.0
    assert result.chosen["model"] == "logistic" and result.chosen["val_metric"] == "macro_f1"
    assert list(result.per_label.columns) == ["label", "n_train", "n_val", "n_test", "f1"]
    assert result.per_label.set_index("label").loc["jazz", ["n_train", "n_val", "n_test"]].tolist() == [20, 20, 20]

    vectors, labels = single_label_data(separable=False)
    result = probe_tagset(vectors, labels, tagset="genres")
    predicted = np.array(result.probe.labels)[result.probe.scores(vectors["test"]).argmax(axis=1)]
    truth = [row[0] for row in labels["test"]]
    assert result.metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert result.metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert result.metrics["accuracy"] < 0.6  # chance is 1/3: nothing to read off random vectors


def test_multi_label_separable_and_random_against_sklearn():
    vectors, labels = multi_label_data(separable=True)
    result = probe_tagset(vectors, labels, tagset="moods")
    assert result.kind == MULTI and result.chosen["val_metric"] == "roc_auc"
    assert result.metrics["roc_auc"] > 0.97 and result.metrics["pr_auc"] > 0.95

    vectors, labels = multi_label_data(separable=False)
    result = probe_tagset(vectors, labels, tagset="moods")
    scores = result.probe.scores(vectors["test"])
    truth = np.array([[name in row for name in result.probe.labels] for row in labels["test"]])
    aucs = [roc_auc_score(truth[:, j], scores[:, j]) for j in range(3)]
    aps = [average_precision_score(truth[:, j], scores[:, j]) for j in range(3)]
    assert result.metrics["roc_auc"] == pytest.approx(np.mean(aucs))
    assert result.metrics["pr_auc"] == pytest.approx(np.mean(aps))
    assert result.per_label["roc_auc"].tolist() == pytest.approx(aucs)
    assert abs(result.metrics["roc_auc"] - 0.5) < 0.15


def test_metrics_by_hand():
    # positives score 0.9 and 0.3, negatives 0.8 and 0.1: 3 of the 4 positive-negative pairs are ordered
    truth = [["x"], [], ["x"], []]
    metrics, per_label, unscorable = score_labels(MULTI, ["x"], truth, np.array([[0.9], [0.8], [0.3], [0.1]]))
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["pr_auc"] == pytest.approx((1 / 1 + 2 / 3) / 2)  # precision at each positive, averaged
    assert unscorable == []
    # single-label: predictions a, b, b, a against a, b, a, a -> 3 of 4 right; F1(a) = 0.8, F1(b) = 2/3
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    metrics, per_label, unscorable = score_labels(SINGLE, ["a", "b"], [["a"], ["b"], ["a"], ["a"]], scores)
    assert metrics["accuracy"] == 0.75
    # one-vs-rest ROC-AUC: every a-row scores a higher than the b-row does (0.9, 0.4, 0.7 > 0.2), and the
    # b-row scores b higher than the a-rows (0.8 > 0.1, 0.6, 0.3): 1 each, although row 2 is misclassified
    assert per_label == {"a": {"f1": pytest.approx(0.8), "roc_auc": 1.0},
                         "b": {"f1": pytest.approx(2 / 3), "roc_auc": 1.0}}
    assert metrics["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2) and metrics["roc_auc"] == 1.0
    scores[1] = [0.5, 0.5]  # the b-row now scores a 0.5, above the a-row's 0.4: AUC(a) = 2/3; b's 0.5 beats 0.1, 0.3
    metrics, per_label, _ = score_labels(SINGLE, ["a", "b"], [["a"], ["b"], ["a"], ["a"]], scores)
    assert per_label["a"]["roc_auc"] == pytest.approx(2 / 3) and per_label["b"]["roc_auc"] == pytest.approx(2 / 3)


def test_thresholds_maximize_f1_on_val():
    # "score >= t": t=0.9 F1 .67, t=0.7 F1 .5, t=0.6 F1 .8 (both positives, one false), t=0.1 F1 .67
    scores = np.array([[0.9, 0.5], [0.6, 0.5], [0.7, 0.5], [0.1, 0.5]])
    thresholds, defaults = choose_thresholds(MULTI, ["x", "never"], [["x"], ["x"], [], []], scores)
    assert thresholds.tolist() == [0.6, 0.5] and defaults == ["never"]


# ------------------------------------------------------------------------------ labels that cannot be scored


def test_unscorable_labels_are_listed_with_reasons():
    vectors, labels = multi_label_data(separable=True, n=40)
    labels = {split: [list(row) for row in rows] for split, rows in labels.items()}
    for row in labels["train"]:
        row.append("everywhere")  # every train track: nothing to learn
    labels["test"][0].append("new")  # only in test
    labels["val"][0].append("valonly")  # only in val
    labels["train"][0].append("rare")  # in train, not in test
    labels["test"][1].append("single")  # one test positive: scored (a positive and a negative)
    labels["train"][1].append("single")
    for row in labels["test"]:  # in every test track: no negative
        row.append("common")
    for row in labels["train"][:10]:
        row.append("common")
    result = probe_tagset(vectors, labels, tagset="moods")
    assert sorted(result.unscorable) == [
        ("common", "no negative in test"),
        ("everywhere", "no negative in train: every train track has it"),
        ("new", "only in test: never in train"),
        ("rare", "no positive in test"),
        ("valonly", "only in val: never in train"),
    ]
    assert set(result.probe.labels) == {"a", "b", "c", "common", "rare", "single"}
    table = result.per_label.set_index("label")
    assert table.loc["single", "n_test"] == 1 and np.isfinite(table.loc["single", "roc_auc"])
    assert table.loc["new", ["n_train", "n_val", "n_test"]].tolist() == [0, 0, 1]
    unscored = [label for label, _ in result.unscorable]
    assert table.loc[unscored, "roc_auc"].isna().all()
    assert table.drop(index=unscored)["roc_auc"].notna().all()
    assert set(table.index) == {"a", "b", "c", "common", "everywhere", "new", "rare", "single", "valonly"}


def test_single_label_leaves_out_tracks_without_a_label_and_counts_them():
    vectors, labels = single_label_data(separable=True)
    labels = {split: [list(row) for row in rows] for split, rows in labels.items()}
    for split in SPLITS:
        for row in labels[split][::12]:  # 1 in 12 without a label: still single-label (coverage >= 0.9)
            row.clear()
    labels["test"][1] = ["blues"]  # only in test: left out of accuracy, listed
    result = probe_tagset(vectors, labels, tagset="genres")
    assert result.kind == SINGLE
    assert result.counts["left_out_without_label"] == {"train": 5, "val": 5, "test": 5}
    assert result.counts["left_out_unknown_label"] == {"test": 1}
    assert ("blues", "only in test: never in train") in result.unscorable
    # accuracy over the 54 test tracks with a label the probe knows
    kept = [i for i, row in enumerate(labels["test"]) if row and row[0] != "blues"]
    predicted = np.array(result.probe.labels)[result.probe.scores(vectors["test"][kept]).argmax(axis=1)]
    assert len(kept) == 54
    assert result.metrics["accuracy"] == pytest.approx(accuracy_score([labels["test"][i][0] for i in kept], predicted))
    assert result.metrics["accuracy"] > 0.95
    # a second label on one track makes the tagset multi-label; its unlabelled tracks become negatives
    labels["val"][1] = ["jazz", "rock"]
    assert probe_tagset(vectors, labels, tagset="genres").kind == MULTI


def test_nothing_to_learn_and_broken_inputs_name_the_tagset():
    vectors, labels = single_label_data(separable=True)
    with pytest.raises(InputError, match="tagset genres: nothing to learn"):
        probe_tagset(vectors, {**labels, "train": [[] for _ in labels["train"]]}, tagset="genres")
    with pytest.raises(InputError, match="tagset genres: nothing to learn"):
        probe_tagset(vectors, {**labels, "train": [["jazz"] for _ in labels["train"]]}, tagset="genres")
    broken = {**vectors, "val": vectors["val"].copy()}
    broken["val"][7, 2] = np.nan
    with pytest.raises(InputError, match="tagset genres: val row 7 has NaN"):
        probe_tagset(broken, labels, tagset="genres")
    with pytest.raises(InputError, match="tagset genres: test vectors have 5 dimensions, train 8"):
        probe_tagset({**vectors, "test": vectors["test"][:, :5]}, labels, tagset="genres")
    with pytest.raises(InputError, match="tagset genres: no test split"):
        probe_tagset({k: v for k, v in vectors.items() if k != "test"}, labels, tagset="genres")
    with pytest.raises(InputError, match=r"tagset genres: val has vectors of shape \(59, 8\) for 60 label rows"):
        probe_tagset({**vectors, "val": vectors["val"][1:]}, labels, tagset="genres")


def test_no_label_scorable_on_val_keeps_the_simplest_probe(caplog):
    vectors, labels = single_label_data(separable=True)
    labels = {**labels, "val": [[] for _ in labels["val"]]}
    result = probe_tagset(vectors, labels, tagset="genres")
    assert result.chosen["model"] == "logistic" and result.chosen["params"] == {"C": 0.01}
    assert np.isnan(result.chosen["val_score"]) and "no label can be scored on val" in caplog.text
    assert result.metrics["accuracy"] == 1.0


# --------------------------------------------------------------------------------------- numpy forward


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the reference fit, bounded as ours
@pytest.mark.parametrize("kind,n_labels", [(SINGLE, 2), (SINGLE, 3), (MULTI, 1), (MULTI, 3)])
@pytest.mark.parametrize("model,params", [("logistic", {"C": 0.5}),
                                          ("mlp", {"hidden_layer_sizes": (16,), "alpha": 0.1})])
def test_probe_scores_equal_sklearn_predict_proba(kind, n_labels, model, params):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 5))
    if kind == SINGLE:
        y = (x[:, :n_labels] + 0.5 * rng.normal(size=(90, n_labels))).argmax(axis=1)
    else:
        y = (x[:, :n_labels] + 0.5 * rng.normal(size=(90, n_labels)) > 0).astype(np.int64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    z = (x - mean) / scale
    labels = [f"l{j}" for j in range(n_labels)]
    probe = fit_probe(model, params, kind=kind, labels=labels, x=z, y=y, mean=mean, scale=scale, seed=3)
    one_column = kind == MULTI and n_labels == 1
    if model == "logistic" and kind == MULTI:
        expected = np.stack([LogisticRegression(C=0.5, max_iter=300).fit(z, y[:, j]).predict_proba(z)[:, 1]
                             for j in range(n_labels)], axis=1)
    else:
        estimator = (LogisticRegression(C=0.5, max_iter=300) if model == "logistic"
                     else MLPClassifier(solver="lbfgs", max_iter=300, random_state=3, **params))
        estimator.fit(z, y[:, 0] if one_column else y)
        expected = estimator.predict_proba(z)
        if one_column:
            expected = expected[:, 1:]
    scores = probe.scores(x)
    assert scores.shape == (90, n_labels)
    np.testing.assert_allclose(scores, expected, atol=1e-9)
    np.testing.assert_allclose(probe.scores(x[0]), expected[0], atol=1e-9)
    if kind == SINGLE:
        np.testing.assert_allclose(scores.sum(axis=1), 1.0)


# ------------------------------------------------------------------------------------------ reading a run


def write_split(root, split, ids, vectors):
    write_embeddings(root / "embeddings" / split, np.asarray(vectors, dtype=np.float32), ids, [],
                     {"model_id": "m"})
    partition = root / "partitions" / f"{split}.csv"
    partition.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"track_id": ids, "filename": [f"{t}.wav" for t in ids]}).to_csv(partition, index=False)
    return partition


def test_read_split_refuses_nan_stray_ids_and_other_widths_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    for split in SPLITS:
        write_split(tmp_path, split, [f"{split}{i}" for i in range(4)], rng.normal(size=(4, 3)))
    splits = read_splits(tmp_path / "embeddings", tmp_path / "partitions")
    assert [s.ids for s in splits.values()] == [[f"{s}{i}" for i in range(4)] for s in SPLITS]
    assert splits["val"].vectors.dtype == np.float32 and splits["val"].not_embedded == []

    # a partition track without a vector (failed extraction) is listed, not an error
    partition = tmp_path / "partitions" / "val.csv"
    partition.write_text(partition.read_text() + "val9,val9.wav\n")
    assert read_split(tmp_path / "embeddings" / "val", partition).not_embedded == ["val9"]

    vectors = np.load(tmp_path / "embeddings" / "test" / "vectors.npy")
    vectors[2, 1] = np.nan
    np.save(tmp_path / "embeddings" / "test" / "vectors.npy", vectors)
    with pytest.raises(InputError) as caught:
        read_splits(tmp_path / "embeddings", tmp_path / "partitions")
    assert str(caught.value) == (f"{tmp_path / 'embeddings' / 'test'}: NaN or infinite values in row 2 "
                                 "(track 'test2')")

    write_split(tmp_path, "test", [f"test{i}" for i in range(4)], rng.normal(size=(4, 5)))
    with pytest.raises(InputError) as caught:
        read_splits(tmp_path / "embeddings", tmp_path / "partitions")
    assert str(caught.value) == f"{tmp_path / 'embeddings' / 'test'}: vectors of 5 dimensions, expected 3"

    with pytest.raises(InputError) as caught:  # the train embeddings read against the val partition
        read_split(tmp_path / "embeddings" / "train", tmp_path / "partitions" / "val.csv")
    assert str(caught.value) == (f"{tmp_path / 'embeddings' / 'train'}: track 'train0' is not in "
                                 f"{tmp_path / 'partitions' / 'val.csv'} (3 more) (embeddings of another split or "
                                 "run?)")


def test_labels_of_names_the_manifest():
    frame = pd.DataFrame({"track_id": ["a", "b", "c"], "tags_genres": [["rock", "rock"], [], ["jazz"]],
                          "tags_moods": [[], [], []]})
    assert labels_of(frame, "genres", ["c", "a", "b"]) == [["jazz"], ["rock"], []]
    with pytest.raises(InputError, match=r"^m.parquet: track 'zz' is not in the manifest \(1 more\)$"):
        labels_of(frame, "genres", ["a", "zz", "yy"], source="m.parquet")
    with pytest.raises(InputError, match=r"^m.parquet: no tagset 'styles' \(tagsets: genres, moods\)$"):
        labels_of(frame, "styles", ["a"], source="m.parquet")


def test_result_is_json_friendly():
    vectors, labels = single_label_data(separable=True, n=30)
    result = probe_tagset(vectors, labels, tagset="genres")
    json.dumps({"chosen": result.chosen, "metrics": result.metrics, "counts": result.counts,
                "unscorable": result.unscorable})


def test_a_tagset_most_tracks_lack_is_multi_label():
    from musicrep.evaluation.probes import MULTI, SINGLE, label_kind

    assert label_kind([["rock"]] * 19 + [[]]) == SINGLE  # 95% carry exactly one
    assert label_kind([["love"], [], [], ["war"]]) == MULTI  # themes: "no theme" is a negative, not a gap
    assert label_kind([["rock", "pop"], ["jazz"]]) == MULTI
    assert label_kind([["rock", "rock"], ["jazz"]]) == SINGLE  # a repeated tag is one label
