"""musicrep evaluate end to end on a small trained run: metrics.json, report.md, figures, comparison, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli, run_musicrep
from musicrep.data.manifest import normalize_name, read_manifest, write_manifest
from musicrep.evaluation.retrieval import map_at_k, ndcg_at_k, precision_at_k
from musicrep.inference.embed import read_embeddings, write_embeddings

TINY = """
[model]
name = "kim2019"
width = 0.25
embedding_dim = 32

[[tasks]]
space = "joint"
objective = "triplet"

[train]
epochs = 2
batch_size = 16
lr = 1e-3
seed = 0
crop_frames = 64
num_workers = 0
"""

SPLITS = ("train", "val", "test")
PNG = b"\x89PNG\r\n\x1a\n"
QUICK = ("--no-probes", "--baselines", "none", "--no-plots")


@pytest.fixture(scope="session")
def trained_run(demo_run, tmp_path_factory) -> Path:
    """The demo run with a tiny trained model (2 epochs) and its embeddings of every split."""
    run = tmp_path_factory.mktemp("evaluated") / "run"
    run.mkdir()
    for name in ("manifest.parquet", "partitions", "features", "targets"):
        (run / name).symlink_to(demo_run / name)
    recipe = run.parent / "tiny.toml"
    recipe.write_text(TINY)
    trained = run_cli("train", "--config", recipe, "--run", run)
    assert trained.exit_code == 0, trained.stderr
    for split in SPLITS:
        embedded = run_cli("embed", "--model", run / "model", "--store", run / "features" / split,
                           "--out", run / "embeddings" / split)
        assert embedded.exit_code == 0, embedded.stderr
    return run


@pytest.fixture(scope="session")
def plain_run(demo_run, tmp_path_factory) -> Path:
    """The demo run with random vectors as its embeddings (no model): enough for every bad-input case."""
    run = tmp_path_factory.mktemp("plain") / "run"
    run.mkdir()
    for name in ("manifest.parquet", "partitions", "features", "targets"):
        (run / name).symlink_to(demo_run / name)
    rng = np.random.default_rng(0)
    for split in SPLITS:
        ids = pd.read_csv(demo_run / "features" / split / "index.csv", dtype={"track_id": str})["track_id"].tolist()
        write_embeddings(run / "embeddings" / split, rng.standard_normal((len(ids), 32)).astype(np.float32), ids, [],
                         {"embedding_dim": 32})
    return run


@pytest.fixture(scope="session")
def evaluated(trained_run) -> tuple[Path, dict]:
    """``musicrep evaluate --run`` with every baseline, probes of two tagsets and the figures."""
    result = run_cli("evaluate", "--run", trained_run, "--probe-tagsets", "genres,moods")
    assert result.exit_code == 0, result.stderr
    report = trained_run / "report"
    return report, {"stdout": result.stdout, "stderr": result.stderr,
                    "metrics": json.loads((report / "metrics.json").read_text())}


@pytest.mark.slow
def test_metrics_json_schema_and_methods(evaluated, trained_run):
    _, out = evaluated
    metrics = out["metrics"]
    methods = metrics["methods"]
    assert list(methods) == ["model", "handcrafted", "untrained", "random", "oracle"]
    dims = {name: m["dim"] for name, m in methods.items()}
    assert dims == {"model": 32, "handcrafted": 102, "untrained": 32, "random": 32, "oracle": dims["oracle"]}
    assert dims["oracle"] == json.loads((trained_run / "targets" / "joint" / "model.json").read_text())["dims"]
    n_test = metrics["splits"]["test"]["tracks"]
    assert n_test == len(pd.read_csv(trained_run / "embeddings" / "test" / "ids.csv"))
    for name, method in methods.items():
        for rule in ("artist_filtered", "unfiltered"):
            scores = method["retrieval"]["genres"][rule]
            for k in (1, 5, 10, 20, 50):
                for metric in ("P", "MAP", "nDCG", "nDCG_text"):
                    value = scores[f"{metric}@{k}"]
                    assert value is None or 0.0 <= value <= 1.0 + 1e-9, (name, rule, metric, k)
            assert scores["queries"] + scores["skipped"] == n_test
            assert scores["nDCG_queries"] + scores["nDCG_skipped"] == n_test
        if name == "oracle":
            assert method["probes"] == {}
            # ranking by the relevance vectors themselves is the ideal list
            assert method["retrieval"]["genres"]["artist_filtered"]["nDCG@10"] == pytest.approx(1.0, abs=1e-6)
            continue
        genres, moods = method["probes"]["genres"], method["probes"]["moods"]
        assert genres["kind"] == "single-label" and {"accuracy", "macro_f1"} <= set(genres)
        assert moods["kind"] == "multi-label" and {"roc_auc", "pr_auc"} <= set(moods)
        assert {row["label"] for row in genres["per_label"]} >= {"jazz", "rock"}
    text = metrics["relevance"]["text"]
    assert text["available"] and text["tracks_with_vector"] <= n_test
    assert methods["model"]["retrieval"]["genres"]["artist_filtered"]["nDCG_text_skipped"] >= n_test - text[
        "tracks_with_vector"]  # a track without a text is relevant to nothing there
    assert metrics["settings"]["map"] == "t-SNE (scikit-learn)"
    json.loads((trained_run / "report" / "metrics.json").read_text(), parse_constant=pytest.fail)  # strict JSON


@pytest.mark.slow
def test_metrics_are_the_retrieval_functions_on_the_test_vectors(evaluated, trained_run):
    metrics = evaluated[1]["metrics"]
    vectors, ids, _ = read_embeddings(trained_run / "embeddings" / "test")
    frame = read_manifest(trained_run / "manifest.parquet").frame.set_index("track_id")
    labels = [list(frame.loc[t, "tags_genres"]) for t in ids]
    artists = [normalize_name(frame.loc[t, "artist"]) for t in ids]
    space = np.load(trained_run / "targets" / "joint" / "vectors.npy")
    rows = {t: i for i, t in enumerate(pd.read_csv(trained_run / "targets" / "joint" / "ids.csv")["track_id"])}
    relevance = np.array([space[rows[t]] if t in rows else np.zeros(space.shape[1]) for t in ids])
    for rule, exclude in (("artist_filtered", True), ("unfiltered", False)):
        scores = metrics["methods"]["model"]["retrieval"]["genres"][rule]
        options = {"k": 10, "artists": artists, "exclude_same_artist": exclude}
        for key, result in (("P@10", precision_at_k(vectors, labels, **options)),
                            ("MAP@10", map_at_k(vectors, labels, **options)),
                            ("nDCG@10", ndcg_at_k(vectors, relevance, **options))):
            if result.queries == 0:  # every query skipped (the demo's test artists each play one genre): null
                assert scores[key] is None
            else:
                assert scores[key] == pytest.approx(result.value, abs=1e-12)
        assert (scores["queries"], scores["skipped"]) == (result.queries, result.skipped) or key == "nDCG@10"


@pytest.mark.slow
def test_report_figures_and_printed_table(evaluated):
    report, out = evaluated
    text = (report / "report.md").read_text()
    assert text.startswith("# Evaluation report")
    header = ("| method      | dim | P@10 genres | MAP@10 genres | nDCG@10 | nDCG_text@10 | genres accuracy "
              "| moods ROC-AUC |")
    assert header in text and header in out["stdout"]  # the main table, printed too
    for name in ("model", "handcrafted", "untrained", "random", "oracle"):
        assert f"| {name}" in out["stdout"]
    assert "t-SNE (scikit-learn)" in text and "Skipped queries" in text and "### genres, unfiltered" in text
    figures = out["metrics"]["report"]["figures"]
    assert set(figures) == {"precision", "per_label_genres", "per_label_moods", "map", "training"}
    import matplotlib.image

    for file in figures.values():
        path = report / file
        assert path.read_bytes()[:8] == PNG and f"]({file})" in text
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 300 and image[..., :3].std() > 0.05  # drawn, not blank
    assert "report.md" in out["stdout"]


@pytest.mark.slow
def test_untrained_baseline_is_the_network_training_started_from(trained_run):
    """Training recorded its network's validation nDCG@10 before the first step; the baseline gives it again."""
    from musicrep.evaluation.baselines import untrained_encoder
    from musicrep.features.merge import FeatureStore
    from musicrep.inference.embed import embed_store
    from musicrep.inference.hub import load
    from musicrep.targets.space import load_space

    config = json.loads((trained_run / "model" / "config.json").read_text())
    import torch

    state = torch.random.get_rng_state()
    encoder = untrained_encoder(trained_run / "model")
    assert torch.equal(state, torch.random.get_rng_state())  # the global random state is left alone
    assert encoder.model_id.startswith("untrained-0-")
    trained = load(trained_run / "model")
    np.testing.assert_array_equal(encoder.model.standardize.mean, trained.model.standardize.mean)
    weights = dict(encoder.model.backbone.named_parameters())
    assert any(not torch.equal(weights[n], p) for n, p in trained.model.backbone.named_parameters())
    again = untrained_encoder(trained_run / "model")
    assert all(torch.equal(weights[n], p) for n, p in again.model.backbone.named_parameters())

    vectors, ids = embed_store(encoder, FeatureStore(trained_run / "features" / "val"))
    space = load_space(trained_run / "targets" / "joint")
    rows = space.row_of()
    kept = [i for i, t in enumerate(ids) if t in rows]
    artist = read_manifest(trained_run / "manifest.parquet").frame.set_index("track_id")["artist"]
    names = [normalize_name(artist[ids[i]]) or f"\x00{ids[i]}" for i in kept]
    value = ndcg_at_k(vectors[kept], np.asarray(space.vectors)[[rows[ids[i]] for i in kept]], k=10, artists=names)
    assert value.value == pytest.approx(config["validation"]["untrained_ndcg@10"], abs=1e-4)


@pytest.mark.slow
def test_explicit_embeddings_rotation_invariance_and_compare(evaluated, trained_run, tmp_path):
    """Vectors rotated by an orthogonal matrix have the same cosines: the same retrieval figures."""
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.standard_normal((32, 32)))
    vectors, ids = [], []
    for split in SPLITS:  # one folder holding every split
        v, i, _ = read_embeddings(trained_run / "embeddings" / split)
        vectors.append(np.asarray(v) @ rotation)
        ids += i.tolist()
    mine = write_embeddings(tmp_path / "mine", np.concatenate(vectors).astype(np.float32), ids, [], {"source": "test"})
    out = tmp_path / "explicit"
    result = run_cli("evaluate", "--embeddings", f"rotated={mine}", "--manifest", trained_run / "manifest.parquet",
                     "--partitions", trained_run / "partitions", "--targets", trained_run / "targets", "--out", out,
                     "--no-probes", "--no-plots")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["methods"]) == ["rotated", "random", "oracle"]
    assert any("handcrafted not computed: no --features" in n for n in metrics["notes"])
    assert "note: baseline untrained not computed: no --model" in result.stderr
    model = evaluated[1]["metrics"]["methods"]["model"]["retrieval"]["genres"]
    for rule in ("artist_filtered", "unfiltered"):
        for key in ("P@10", "MAP@10", "nDCG@10", "P@1"):
            assert metrics["methods"]["rotated"]["retrieval"]["genres"][rule][key] == pytest.approx(
                model[rule][key], abs=1e-6)

    compared = run_cli("evaluate", "--compare", trained_run, out, "--out", tmp_path / "tables")
    assert compared.exit_code == 0, compared.stderr
    table = (tmp_path / "tables" / "compare.md").read_text()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if
            line.startswith("| ")]
    header = rows[0]
    assert header[:3] == ["run", "method", "dim"] and "genres accuracy" in header
    by_row = {(row[0], row[1]): dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert set(by_row) >= {("run", "model"), ("run", "handcrafted"), ("explicit", "rotated"), ("explicit", "oracle")}
    assert by_row[("explicit", "rotated")]["P@10 genres"] == by_row[("run", "model")]["P@10 genres"]
    assert by_row[("explicit", "rotated")]["genres accuracy"] == "–"  # not probed in that run
    assert by_row[("run", "model")]["genres accuracy"] != "–"
    assert all(line in compared.stdout for line in table.splitlines() if line.startswith("| "))
    single = run_cli("evaluate", "--compare", out, "--out", tmp_path / "one.md", "--no-artist-filter")
    assert single.exit_code == 0 and "unfiltered" in (tmp_path / "one.md").read_text()
    assert "note:" not in compared.stdout  # the same partitions: comparable

    # the same report twice (as a run and as its report folder) is shown once, named by its run
    twice = run_cli("evaluate", "--compare", trained_run, trained_run / "report", "--out", tmp_path / "twice.md")
    assert twice.exit_code == 0 and f"the same report as {trained_run}, shown once" in twice.stdout
    assert sum(line.startswith(f"| {trained_run.name} ") and "| model " in line
               for line in twice.stdout.splitlines()) == 1
    # another test split is said to be less comparable
    other = tmp_path / "other-parts"
    other.mkdir()
    test_ids = pd.read_csv(trained_run / "partitions" / "test.csv", dtype=str)
    shutil.copy(trained_run / "partitions" / "train.csv", other / "train.csv")
    val_ids = pd.read_csv(trained_run / "partitions" / "val.csv", dtype=str)
    pd.concat([val_ids, test_ids.iloc[-1:]]).to_csv(other / "val.csv", index=False)  # one test track moves to val
    test_ids.iloc[:-1].to_csv(other / "test.csv", index=False)
    fewer = tmp_path / "fewer"
    assert run_cli("evaluate", "--embeddings", f"rotated={mine}", "--manifest", trained_run / "manifest.parquet",
                   "--partitions", other, "--out", fewer, "--no-probes", "--no-plots").exit_code == 0
    mixed = run_cli("evaluate", "--compare", trained_run, fewer, "--out", tmp_path / "mixed.md")
    assert mixed.exit_code == 0 and "evaluated on different test splits" in mixed.stdout
    assert "evaluated on different test splits" in (tmp_path / "mixed.md").read_text()
    missing = run_cli("evaluate", "--compare", tmp_path / "nowhere")
    assert missing.stderr.strip() == f"error: {tmp_path / 'nowhere'}: does not exist"


@pytest.mark.slow
def test_a_label_with_one_test_track_and_only_in_test(evaluated, trained_run, tmp_path):
    """One test track's genre becomes 'polka': a label of one test track, and only in test."""
    manifest = read_manifest(trained_run / "manifest.parquet")
    frame = manifest.frame.copy()
    test_ids = pd.read_csv(trained_run / "partitions" / "test.csv")["track_id"].tolist()
    info = frame.set_index("track_id").loc[test_ids]
    group = {t: (normalize_name(info.loc[t, "artist"]), info.loc[t, "tags_genres"][0]) for t in test_ids}
    # a track whose artist and genre two other test tracks share: unfiltered, they keep each other
    chosen = next(t for t in test_ids if sum(group[u] == group[t] for u in test_ids) >= 3)
    frame["tags_genres"] = [["polka"] if t == chosen else list(tags) for t, tags in
                            zip(frame["track_id"], frame["tags_genres"], strict=True)]
    manifest.frame = frame
    changed = write_manifest(manifest, tmp_path / "manifest.parquet")
    result = run_cli("evaluate", "--run", trained_run, "--manifest", changed, "--out", tmp_path / "report",
                     "--baselines", "random", "--probe-tagsets", "genres", "--no-plots")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    summary = metrics["labels"]["genres"]
    assert summary["single_in_test"] == ["polka"] and summary["only_in_test"] == ["polka"]
    before = evaluated[1]["metrics"]["methods"]["model"]["retrieval"]["genres"]
    after = metrics["methods"]["model"]["retrieval"]["genres"]
    assert after["unfiltered"]["skipped"] == before["unfiltered"]["skipped"] + 1  # its query: skipped, not 0
    assert after["artist_filtered"]["skipped"] >= before["artist_filtered"]["skipped"]
    assert after["unfiltered"]["queries"] + after["unfiltered"]["skipped"] == len(test_ids)
    unscorable = dict(metrics["methods"]["model"]["probes"]["genres"]["unscorable"])
    assert "polka" in unscorable and "test" in unscorable["polka"]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "with fewer than 2 test tracks: polka" in text and "only in test: polka" in text
    assert "polka (" in text  # listed among the unscorable labels with its reason


def test_a_run_without_a_model(plain_run, tmp_path):
    """Embeddings of another origin (here random), the baselines the run allows, a report with its figures."""
    result = run_cli("evaluate", "--run", plain_run, "--out", tmp_path / "report", "--probe-tagsets", "genres",
                     "--k", "10,1,5")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert list(metrics["methods"]) == ["model", "handcrafted", "random", "oracle"]
    assert metrics["settings"]["ks"] == [1, 5, 10]
    assert "note: baseline untrained not computed: no --model" in result.stderr
    oracle = metrics["methods"]["oracle"]["retrieval"]["genres"]["unfiltered"]
    assert oracle["P@1"] == 1.0  # on the demo, the nearest joint tag vector is always of a track of its genre
    assert set(metrics["report"]["figures"]) == {"precision", "per_label_genres", "map"}  # no training logs
    for file in metrics["report"]["files"]:
        assert (tmp_path / "report" / file).is_file()
    assert "map of the test embeddings of model" in (tmp_path / "report" / "report.md").read_text()


def test_vectors_of_another_model_need_only_vectors_and_ids(plain_run, tmp_path):
    """A folder per split with vectors.npy and ids.csv (no failed.csv, no embed_config.json) is evaluated."""
    theirs = tmp_path / "theirs"
    for split in SPLITS:
        (theirs / split).mkdir(parents=True)
        for name in ("vectors.npy", "ids.csv"):
            shutil.copy(plain_run / "embeddings" / split / name, theirs / split / name)
    result = run_cli("evaluate", "--run", plain_run, "--embeddings", f"theirs={theirs}", "--out", tmp_path / "r",
                     *QUICK)
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    ours, brought = metrics["methods"]["model"], metrics["methods"]["theirs"]
    assert brought["dim"] == 32 and brought["retrieval"] == ours["retrieval"]  # the same vectors, the same figures
    (theirs / "test" / "ids.csv").write_text("trackid\nx\n")
    result = run_cli("evaluate", "--run", plain_run, "--embeddings", f"theirs={theirs}", "--out", tmp_path / "r",
                     *QUICK)
    assert result.exit_code == 2
    assert "theirs/test/ids.csv: no track_id column (read the header 'trackid'" in result.stderr


# --------------------------------------------------------------------------- bad input


def _embeddings_copy(plain_run: Path, target: Path) -> Path:
    shutil.copytree(plain_run / "embeddings", target)
    return target


def _rewrite(folder: Path, change) -> None:
    vectors, ids, config = read_embeddings(folder)
    vectors, ids = change(np.array(vectors), ids.tolist())
    failed = pd.read_csv(folder / "failed.csv")
    write_embeddings(folder, vectors, ids, list(failed.itertuples(index=False)), config)


def _nan(vectors, ids):
    vectors[3, 5] = np.nan
    return vectors, ids


def _stranger(vectors, ids):
    return vectors, ["nosuchtrack"] + ids[1:]


def bad_embeddings(kind: str, plain_run: Path, tmp_path: Path) -> tuple[Path, str, list]:
    """An embeddings folder with one problem, the message expected, and extra options."""
    folder = _embeddings_copy(plain_run, tmp_path / "emb")
    if kind == "nan":
        _rewrite(folder / "test", _nan)
        return folder, r"emb/test: NaN or infinite values in row 3 \(track", []
    if kind == "width":
        _rewrite(folder / "val", lambda v, i: (v[:, :16], i))
        return folder, r"emb/(val|train|test): vectors of \d+ dimensions, expected \d+", []
    if kind == "stated-width":
        config = json.loads((folder / "test" / "embed_config.json").read_text())
        (folder / "test" / "embed_config.json").write_text(json.dumps({**config, "embedding_dim": 64}))
        return folder, "emb/test/vectors.npy: 32 dimensions, but embed_config.json says embedding_dim 64", []
    if kind == "not-in-manifest":
        _rewrite(folder / "test", _stranger)
        return folder, "emb/test/ids.csv: track 'nosuchtrack' is not in the manifest", []
    if kind == "other-split":
        shutil.rmtree(folder / "val")
        shutil.copytree(folder / "test", folder / "val")
        return folder, r"emb/val: track '.+' is not in .+val.csv", []
    if kind == "no-partition":  # one folder for every split, holding a track the partitions no longer list
        parts = tmp_path / "parts"
        shutil.copytree(plain_run / "partitions", parts)
        train = pd.read_csv(parts / "train.csv")
        train.iloc[1:].to_csv(parts / "train.csv", index=False)
        embedded = [read_embeddings(folder / s) for s in SPLITS]
        single = write_embeddings(tmp_path / "single", np.concatenate([np.asarray(v) for v, _, _ in embedded]),
                                  [t for _, ids, _ in embedded for t in ids], [], {})
        dropped = train["track_id"].iloc[0]
        return single, f"single/ids.csv: track '{dropped}' is in no partition of", [
            "--manifest", plain_run / "manifest.parquet", "--partitions", parts]
    shutil.rmtree(folder)
    folder.mkdir()
    return folder, "emb: no vectors.npy, nor train/ val/ test/ folders holding one", []


@pytest.mark.parametrize("kind", ["nan", "width", "stated-width", "not-in-manifest", "other-split", "no-partition",
                                  "empty"])
def test_bad_embeddings_one_line_naming_the_file(plain_run, tmp_path, kind):
    import re

    folder, message, extra = bad_embeddings(kind, plain_run, tmp_path)
    where = extra or ["--run", plain_run]  # other partitions: without the run's own embeddings
    result = run_cli("evaluate", *where, "--embeddings", f"bad={folder}", "--out", tmp_path / "r", *QUICK)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]


def test_bad_partitions_and_options(plain_run, tmp_path):
    stranger = tmp_path / "parts"
    shutil.copytree(plain_run / "partitions", stranger)
    with (stranger / "test.csv").open("a") as handle:
        handle.write("nosuchtrack,x/nosuchtrack.wav\n")
    few = tmp_path / "few"
    shutil.copytree(plain_run / "partitions", few)
    test = pd.read_csv(few / "test.csv")
    val = pd.read_csv(few / "val.csv")
    pd.concat([val, test.iloc[1:]]).to_csv(few / "val.csv", index=False)
    test.iloc[:1].to_csv(few / "test.csv", index=False)
    single = tmp_path / "single"  # every split in one folder, so the moved test tracks count as val
    parts = [read_embeddings(plain_run / "embeddings" / s) for s in SPLITS]
    write_embeddings(single, np.concatenate([np.asarray(v) for v, _, _ in parts]),
                     [t for _, ids, _ in parts for t in ids], [], {})
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cases = [
        (["--run", plain_run, "--partitions", stranger],
         "parts/test.csv: track 'nosuchtrack' is not in the manifest"),
        (["--manifest", plain_run / "manifest.parquet", "--partitions", few, "--embeddings", f"all={single}",
          "--out", tmp_path / "r"], "few/test.csv: 1 test track(s) with a vector in every method; retrieval needs"),
        (["--run", plain_run, "--out", blocker / "report"], "a-file/report: cannot create output directory"),
        (["--run", plain_run, "--tagset", "instruments"], "--tagset instruments: not a tagset of"),
        (["--run", plain_run, "--embeddings", "nameless"], "--embeddings must be NAME=DIR"),
        (["--run", plain_run, "--embeddings", f"random={single}"], "the name 'random' is taken"),
        (["--run", plain_run, "--k", "1,ten"], "--k must be positive integers"),
        (["--run", plain_run, "--k", "0,5"], "--k must be positive integers"),
        (["--run", plain_run, "--baselines", "oracle,magic"], "--baselines: unknown 'magic'"),
        (["--manifest", plain_run / "manifest.parquet", "--partitions", plain_run / "partitions",
          "--embeddings", f"all={single}", "--out", tmp_path / "r2", "--baselines", "handcrafted"],
         "baseline handcrafted: no --features"),
        (["--run", tmp_path / "nowhere"], "nowhere: run directory not found"),
        (["--compare", plain_run / "partitions"], "partitions: no report/metrics.json (run `musicrep evaluate --run"),
        (["--run", plain_run, plain_run], "runs to compare go after --compare"),
    ]
    for args, message in cases:
        quick = [] if "--compare" in args else list(QUICK if "--baselines" not in args else QUICK[:1] + QUICK[3:])
        result = run_cli("evaluate", *args, *quick)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2, (args, result.stderr)
        assert len(lines) == 1 and message in lines[0], (args, lines)


def test_help_explains(tmp_path):
    result = run_musicrep("evaluate", "--help")
    assert result.exit_code == 0
    for words in ("--compare", "--embeddings", "--no-artist-filter", "--baselines", "handcrafted", "oracle",
                  "report.md", "t-SNE"):
        assert words in result.stdout, words


def test_a_rerun_leaves_no_figure_its_report_does_not_describe(plain_run, tmp_path):
    out = tmp_path / "report"
    first = run_cli("evaluate", "--run", plain_run, "--out", out, "--probe-tagsets", "genres", "--baselines", "none")
    assert first.exit_code == 0, first.stderr
    drawn = {p.name for p in out.glob("*.png")}
    assert {"precision_at_k.png", "per_label_genres.png"} <= drawn
    (out / "mine.png").write_bytes(b"not ours")  # a file of the user's: kept
    again = run_cli("evaluate", "--run", plain_run, "--out", out, *QUICK)
    assert again.exit_code == 0, again.stderr
    assert {p.name for p in out.glob("*.png")} == {"mine.png"}
    assert json.loads((out / "metrics.json").read_text())["report"]["figures"] == {}
