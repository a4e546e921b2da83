"""Search: vector indexes (exact, FAISS, USearch), `musicrep index` (build, --add, refusals) and `musicrep search`
by track, audio, tags and text, from the CLI and from Python, on a tiny model trained on the demo run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_cli, write_tone
from musicrep.errors import InputError, UsageError
from musicrep.search.layout import layout_map
from musicrep.search.query import Searcher, UnknownTrackError
from musicrep.search.spaces import LinearMap, fit_linear_map, split_tags
from musicrep.search.vectors import build_vector_index, exact_search, load_vector_index, recall_at_k

RECIPE = """
[model]
name = "kim2019"
width = 0.25
embedding_dim = 32

[[tasks]]
space = "joint"
objective = "contrastive"

[[tasks]]
space = "genres"
name = "genre-tags"
objective = "classification"
weight = 0.5

[train]
epochs = 2
batch_size = 16
lr = 5e-3
seed = 0
crop_frames = 64
num_workers = 0
"""


@pytest.fixture(scope="session")
def search_run(demo_run, tmp_path_factory) -> Path:
    """A run with a tiny trained model (a `joint` contrastive head, no text head) and its index built by the CLI.

    Two epochs at a high learning rate: enough for embeddings that differ from track to track (one epoch leaves
    them nearly equal, every cosine above 0.99)."""
    run = tmp_path_factory.mktemp("search") / "run"
    run.mkdir()
    for name in ("manifest.parquet", "partitions", "features", "targets"):
        (run / name).symlink_to(demo_run / name)
    recipe = run.parent / "tiny.toml"
    recipe.write_text(RECIPE)
    trained = run_cli("train", "--config", recipe, "--run", run)
    assert trained.exit_code == 0, trained.stderr
    built = run_cli("index", "--run", run)
    # the demo's broken files cannot be embedded: listed, the rest indexed
    assert built.exit_code == 1, built.stderr
    return run


@pytest.fixture(scope="session")
def searcher(search_run) -> Searcher:
    return Searcher.open(search_run / "index")


@pytest.fixture(scope="session")
def other_model(search_run, tmp_path_factory) -> Path:
    """The trained model's architecture with other weights: another model_id."""
    from musicrep.inference.hub import export_model
    from musicrep.models.encoder import MusicEncoder

    config = json.loads((search_run / "model" / "config.json").read_text())
    torch.manual_seed(1)
    return export_model(MusicEncoder.from_config(config), config, tmp_path_factory.mktemp("other") / "model",
                        card="# Other weights\n")


def manifest_frame(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "manifest.parquet").set_index("track_id")


def audio_file(run: Path, track_id: str) -> Path:
    from musicrep.data.manifest import read_manifest

    manifest = read_manifest(run / "manifest.parquet")
    return manifest.audio_file(manifest.frame.set_index("track_id").loc[track_id, "audio_path"])


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------ vector indexes


def clustered(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Unit vectors around 20 fixed centers (the same for every seed)."""
    centers = np.random.default_rng(100).standard_normal((20, dim))
    rng = np.random.default_rng(seed)
    x = centers[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exact_search_ranks_by_inner_product_and_breaks_ties_by_row():
    vectors = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    scores, rows = exact_search(vectors, np.array([[1, 0]], dtype=np.float32), 3)
    assert rows.tolist() == [[0, 2, 3]] and np.allclose(scores, [[1, 1, 0.6]])
    scores, rows = exact_search(vectors, np.array([[1, 0]], dtype=np.float32), 6)  # k above n: padded
    assert rows[0, 4:].tolist() == [-1, -1] and np.isneginf(scores[0, 4:]).all()
    # ties at the cut go to the lowest rows, so a deeper list starts with the shorter one
    same = np.tile(np.array([[1, 0]], dtype=np.float32), (6, 1))
    for k in range(1, 7):
        assert exact_search(same, np.array([[1, 0]], dtype=np.float32), k)[1].tolist() == [list(range(k))]
    # chunking does not change the answer
    data, queries = clustered(500), clustered(40, seed=1)
    assert np.array_equal(exact_search(data, queries, 7)[1], exact_search(data, queries, 7, chunk=3)[1])


@pytest.mark.parametrize("kind", ["faiss-ivf", "usearch-hnsw"])
def test_approximate_indexes_reach_their_recall_and_survive_a_save(kind, tmp_path):
    data, queries = clustered(3000), clustered(200, seed=1)
    index = build_vector_index(data, kind=kind, target_recall=0.95)
    assert index.kind == kind and len(index) == len(data)
    _, truth = exact_search(data, queries, 10)
    _, found = index.search(queries, 10)
    assert recall_at_k(found, truth, 10) >= 0.9  # held-out queries, calibrated on other held-out rows
    path = tmp_path / "index.bin"
    index.save(path)
    loaded = load_vector_index(kind, path, index.params(), data)
    assert np.array_equal(loaded.search(queries, 10)[1], found)
    # rows added later keep their numbers and are found
    extra = clustered(5, seed=2)
    loaded.add(extra)
    _, rows = loaded.search(extra, 1)
    assert rows[:, 0].tolist() == list(range(3000, 3005))
    with pytest.raises(InputError, match="holds 3000 vectors, the index folder 3005"):
        load_vector_index(kind, path, index.params(), np.zeros((3005, 16), dtype=np.float32))
    assert build_vector_index(data, exact_below=5000).kind == "exact"


def test_linear_map_recovers_a_linear_relation_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x = clustered(400, dim=12)
    truth = rng.standard_normal((5, 12))
    y = x @ truth.T
    fitted = fit_linear_map(x[:300], y[:300], x[300:], y[300:])
    assert fitted.val_cosine > 0.99 and fitted.alpha <= 1.0
    fitted.save(tmp_path / "map.npz")
    loaded = LinearMap.load(tmp_path / "map.npz")
    assert np.allclose(loaded.apply(x[300:]), fitted.apply(x[300:]))
    assert np.allclose(np.linalg.norm(loaded.apply(x), axis=1), 1.0, atol=1e-5)
    with pytest.raises(UsageError, match="at least 2 training tracks"):
        fit_linear_map(x[:1], y[:1], x[1:], y[1:])


def test_map_layouts_scale_into_the_unit_square_and_place_indexed_points_where_they_are():
    data = clustered(300)
    xy, layout = layout_map(data, method="pca")
    assert np.abs(xy).max() == pytest.approx(1.0)
    assert np.allclose(layout.place(data[:10], np.zeros((10, 5, 2)), np.ones((10, 5))), xy[:10], atol=1e-5)
    xy, layout = layout_map(data[:60], method="auto")
    assert layout.method == "tsne" and xy.shape == (60, 2) and np.abs(xy).max() <= 1.0
    # t-SNE has no transform: a new point lands at the weighted mean of its neighbours
    point = layout.place(data[:1], np.array([[[0.0, 0.0], [1.0, 1.0]]]), np.array([[1.0, 0.0]]))
    assert np.allclose(point, [[0.0, 0.0]], atol=1e-5)


def test_tags_are_split_and_normalized():
    assert split_tags("Jazz; hip  hop,, calm ;jazz") == ["jazz", "hip hop", "calm"]
    assert split_tags(["Rock", " "]) == ["rock"]


# -------------------------------------------------------------------------------------------- the index


def test_index_of_a_run_holds_what_queries_need(search_run, searcher):
    index = search_run / "index"
    description = json.loads((index / "index.json").read_text())
    model_config = json.loads((search_run / "model" / "config.json").read_text())
    assert description["model"]["model_id"] == model_config["model_id"]
    assert description["model"]["path"] == "../model"  # in the run: relative to the index (a moved run works)
    # the model's contrastive head reaches the joint space; the text space, which it has no head for, a ridge map
    assert description["spaces"]["joint"]["via"] == "head" and description["queries"]["tags"] == "joint"
    text = description["spaces"]["text"]
    assert text["via"] == "linear" and description["queries"]["text"] == "text"
    with np.load(index / text["map"], allow_pickle=False) as linear:
        assert linear["coef"].shape == (text["dims"], 32) and float(linear["alpha"]) > 0
    # every track of the manifest is indexed or failed with its reason
    frame = manifest_frame(search_run)
    failed = pd.read_csv(index / "failed.csv", dtype=str)
    assert set(searcher.ids) | set(failed.track_id) == set(frame.index)
    assert not set(searcher.ids) & set(failed.track_id) and len(failed) >= 1
    for track_id, reason in zip(failed.track_id, failed.reason, strict=True):
        assert frame.loc[track_id, "audio_path"] in reason  # the reason names the file
    # nothing was embedded in the run before: the stores were embedded into the index, the rest decoded
    assert {"train", "val", "test"} <= {p.name for p in (index / "embeddings").iterdir()}
    # hits carry the manifest's metadata and the audio's absolute path
    track_id = searcher.ids[0]
    track = searcher.track(track_id)
    assert track["title"] == frame.loc[track_id, "title"] and track["artist"] == frame.loc[track_id, "artist"]
    assert track["tags"]["genres"] == list(frame.loc[track_id, "tags_genres"])
    assert track["has_audio"] and searcher.audio_path(track_id) == audio_file(search_run, track_id)
    ids, xy = searcher.map_points()
    assert ids == searcher.ids and xy.shape == (len(ids), 2) and np.abs(xy).max() <= 1.0 + 1e-6
    assert description["map"]["method"] == "tsne"


def test_indexed_vectors_are_the_models_embeddings(search_run, searcher):
    import musicrep

    encoder = musicrep.load(search_run / "model")
    track_id = searcher.ids[3]
    expected = encoder.embed(audio_file(search_run, track_id))
    stored = np.load(search_run / "index" / "vectors" / "audio.npy")[3]
    assert np.allclose(stored, expected / np.linalg.norm(expected), atol=1e-4)


# --------------------------------------------------------------------------------------------- queries


def test_search_by_track_cli_and_python_agree(search_run, searcher):
    track_id = searcher.ids[5]
    result = run_cli("search", "--index", search_run / "index", "--track", track_id, "-k", "7", "--json")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["query"]["kind"] == "track" and answer["query"]["space"] == "audio"
    hits = answer["hits"]
    assert [h["rank"] for h in hits] == list(range(1, 8)) and track_id not in [h["track_id"] for h in hits]
    assert all(a["score"] >= b["score"] for a, b in zip(hits, hits[1:], strict=False))
    python = searcher.by_track(track_id, k=7).to_dict()
    assert [h["track_id"] for h in python["hits"]] == [h["track_id"] for h in hits]
    assert python["query_xy"] == list(searcher.track(track_id)["xy"])
    # why: the tags each hit shares with the query track, tagset by tagset
    query_tags = searcher.track(track_id)["tags"]
    for hit in hits:
        shared = {t for tagset, tags in hit["tags"].items() for t in tags if t in query_tags.get(tagset, [])}
        assert set(hit["why"]["shared_tags"]) == shared
    text = run_cli("search", "--index", search_run / "index", "--track", track_id, "-k", "3")
    assert text.exit_code == 0 and len(text.stdout.strip().splitlines()) == 4
    assert hits[0]["track_id"] in text.stdout


def test_exclude_artist_removes_the_artist(search_run, searcher):
    for track_id in searcher.ids[:60]:  # a track whose own artist comes back without the option
        artist = searcher.track(track_id)["artist"]
        plain = searcher.by_track(track_id, k=10)
        if any(hit.artist == artist for hit in plain.hits):
            break
    else:
        pytest.fail("no track finds its own artist among its 10 nearest: nothing to exclude")
    result = run_cli("search", "--index", search_run / "index", "--track", track_id, "--exclude-artist", "--json")
    hits = json.loads(result.stdout)["hits"]
    assert len(hits) == 10 and artist not in {h["artist"] for h in hits}
    kept = [h.track_id for h in plain.hits if h.artist != artist]
    assert [h["track_id"] for h in hits][:len(kept)] == kept  # the others keep their order


def test_search_by_audio_file_and_array(search_run, searcher):
    track_id = searcher.ids[10]
    path = audio_file(search_run, track_id)
    result = run_cli("search", "--index", search_run / "index", "--audio", path, "-k", "5", "--json")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    # the indexed recording itself comes first (up to float noise among near-duplicates), and is recognized
    scores = {h["track_id"]: h["score"] for h in answer["hits"]}
    assert scores.get(track_id, 0) > 0.9999 and answer["hits"][0]["score"] - scores[track_id] < 1e-4
    assert answer["query"]["same_as"] == answer["hits"][0]["track_id"]
    assert set(answer["timings"]) == {"decode", "embed", "search"}
    excluded = searcher.by_audio(path, k=5, exclude_artist=True)
    artist = searcher.track(track_id)["artist"]
    assert artist not in {hit.artist for hit in excluded.hits}
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32", always_2d=True)
    from_array = searcher.by_audio(y.T, sr, k=5)  # decoded here, resampled by the model: the same vector
    assert track_id in {h.track_id for h in from_array.hits}
    assert np.allclose([h.score for h in from_array.hits], [h["score"] for h in answer["hits"]], atol=1e-3)
    assert from_array.query_xy is not None


def test_search_by_tags(search_run, searcher):
    result = run_cli("search", "--index", search_run / "index", "--tags", "Jazz; calm ;nosuchtag", "-k", "8",
                     "--json")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["query"]["space"] == "joint"
    assert answer["query"]["known"] == ["jazz", "calm"] and answer["query"]["unknown"] == ["nosuchtag"]
    assert "nosuchtag" in result.stderr and "warning" in result.stderr
    assert len(answer["hits"]) == 8 and answer["query_xy"] is not None
    for hit in answer["hits"]:
        assert set(hit["why"]["shared_tags"]) == {t for t in ("jazz", "calm")
                                                  if t in sum(hit["tags"].values(), [])}
    # the query is projected into the tag space and compared with the tracks' audio through the head
    from musicrep.search.spaces import project_terms
    from musicrep.targets.space import load_space

    space = load_space(search_run / "targets" / "joint")
    query = project_terms(space.model, ["genres:jazz", "moods:calm"])
    joint = np.load(search_run / "index" / "vectors" / "joint.npy")
    similarity = joint @ query
    assert np.allclose([h["score"] for h in answer["hits"]], np.sort(similarity)[::-1][:8], atol=1e-5)
    for hit in answer["hits"]:
        assert hit["score"] == pytest.approx(similarity[searcher.ids.index(hit["track_id"])], abs=1e-5)
    python = searcher.by_tags(["jazz", "calm"], k=8)
    assert [h.track_id for h in python.hits] == [h["track_id"] for h in answer["hits"]]


def test_search_by_text_says_which_terms_weigh(search_run, searcher):
    frame = manifest_frame(search_run)
    english = frame[(frame.language == "en") & frame.index.isin(searcher.ids)].text.iloc[0]
    words = " ".join(english.split()[:12])
    result = run_cli("search", "--index", search_run / "index", "--text", words + " qwertyuiop", "-k", "10",
                     "--json")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["query"]["space"] == "text" and "qwertyuiop" in answer["query"]["unknown"]
    assert answer["query"]["known"] and "qwertyuiop" in result.stderr
    assert len(answer["hits"]) == 10
    for hit in answer["hits"]:
        terms = hit["why"]["terms"]
        assert set(terms) <= set(answer["query"]["known"])
        own = frame.loc[hit["track_id"], "text"].lower()
        assert all(term in own for term in terms)  # a term that weighs in a hit's text is in that text
    assert any(hit["why"]["terms"] for hit in answer["hits"])
    # a German query reaches the same space
    german = searcher.by_text("ein trauriges Album, ruhig und verträumt", k=5)
    assert german.query["known"] and len(german.hits) == 5


# ------------------------------------------------------------------------------- exact against approximate


def test_exact_and_approximate_indexes_agree(search_run, searcher, tmp_path):
    index = search_run / "index"
    for kind in ("faiss-ivf", "usearch-hnsw"):
        result = run_cli("index", "--embeddings", index / "embeddings", "--manifest", search_run / "manifest.parquet",
                         "--model", search_run / "model", "--kind", kind, "--map", "pca", "--out", tmp_path / kind)
        assert result.exit_code == 1, result.stderr  # the broken files are tried again, and fail again
        assert "0 embedded now" in result.stdout
        approximate = Searcher.open(tmp_path / kind)
        assert approximate.description["spaces"]["audio"]["index"]["kind"] == kind
        assert (tmp_path / kind / approximate.description["spaces"]["audio"]["index"]["file"]).is_file()
        assert approximate.ids == searcher.ids
        recalls = []
        for track_id in searcher.ids[:20]:
            exact = searcher.by_track(track_id, k=10).hits
            found = approximate.by_track(track_id, k=10).hits
            # a hit counts when it is as similar as the exact 10th up to float rounding (FAISS sums in its own order)
            recalls.append(np.mean([h.score >= exact[-1].score - 1e-5 for h in found]))
            assert [h.score for h in found] == pytest.approx([h.score for h in exact], abs=0.02)
        assert np.mean(recalls) >= 0.9, (kind, recalls)
        tags_exact = [h.score for h in searcher.by_tags("rock", k=5).hits]
        assert [h.score for h in approximate.by_tags("rock", k=5).hits] == pytest.approx(tags_exact, abs=1e-5)


# ---------------------------------------------------------------------------------------------------- add


def test_add_audio_then_query_the_new_track(search_run, searcher, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(search_run / "index", index)
    original = searcher.ids[7]
    newcomer = tmp_path / "newcomer.ogg"
    shutil.copy(audio_file(search_run, original), newcomer)
    result = run_cli("index", "--add", "--index", index, "--audio", newcomer)
    assert result.exit_code == 0, result.stderr
    assert "1 added" in result.stdout
    added = Searcher.open(index)
    assert len(added) == len(searcher) + 1 and added.ids[-1] == "newcomer"
    assert added.track("newcomer")["title"] == "newcomer" and added.audio_path("newcomer") == newcomer.resolve()
    found = run_cli("search", "--index", index, "--track", "newcomer", "-k", "3", "--json")
    hits = json.loads(found.stdout)["hits"]
    scores = {h["track_id"]: h["score"] for h in hits}  # its twin first, up to float noise among near-duplicates
    assert scores.get(original, 0) > 0.999 and hits[0]["score"] - scores[original] < 1e-4
    # the new track is in every space and on the map, next to its twin
    tags_hits = [h.track_id for h in added.by_tags(searcher.track(original)["tags"]["genres"], k=len(added)).hits]
    assert "newcomer" in tags_hits
    _, xy = searcher.map_points()
    typical = np.median(np.linalg.norm(xy[:, None] - xy[None], axis=-1))
    assert np.linalg.norm(np.subtract(added.track("newcomer")["xy"], searcher.track(original)["xy"])) < typical / 2
    # earlier tracks answer as before
    assert [h.track_id for h in added.by_track(searcher.ids[0], k=5).hits if h.track_id != "newcomer"][:4] == \
        [h.track_id for h in searcher.by_track(searcher.ids[0], k=5).hits][:4]
    again = run_cli("index", "--add", "--index", index, "--audio", newcomer)
    assert again.exit_code == 1 and "already indexed" in again.stderr
    assert len(Searcher.open(index)) == len(added)


def test_add_a_file_whose_name_is_indexed_gets_its_own_id(search_run, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(search_run / "index", index)
    folders_before = sorted(p.name for p in (index / "embeddings").iterdir())
    first, second, later = (write_tone(tmp_path / album / name, seconds=3.0, freq=freq) for album, name, freq in
                            (("alb1", "01.wav", 220.0), ("alb2", "01.flac", 330.0), ("alb3", "01.ogg", 495.0)))
    both = run_cli("index", "--add", "--index", index, "--audio", first, second)
    assert both.exit_code == 0 and "2 added" in both.stdout, both.stdout + both.stderr
    ids = Searcher.open(index).ids[-2:]
    assert ids[0] == "01" and ids[1].startswith("01-") and ids[1] != "01"
    # a later call: a different file of an indexed name gets its own id, and the user is told which
    result = run_cli("index", "--add", "--index", index, "--audio", later)
    assert result.exit_code == 0 and "1 added" in result.stdout, result.stdout + result.stderr
    added = Searcher.open(index)
    new_id = added.ids[-1]
    assert new_id.startswith("01-") and new_id not in ids and added.audio_path(new_id) == later
    assert f"added {later} as {new_id}" in result.stdout
    assert added.by_track(new_id, k=3).hits  # a track like any other
    # the same file again is still refused, and a call that added nothing leaves no embeddings folder
    for again in (first, second, later):
        refused = run_cli("index", "--add", "--index", index, "--audio", again)
        assert refused.exit_code == 1 and "already indexed" in refused.stderr and "0 added" in refused.stdout
    assert len(Searcher.open(index)) == len(added)
    assert len(list((index / "embeddings").iterdir())) == len(folders_before) + 2  # the two calls that added
    # the kept embeddings folders hold the ids the index gave
    from musicrep.inference.embed import read_embeddings

    kept = [read_embeddings(p)[1].tolist() for p in sorted((index / "embeddings").glob("added-*"))]
    assert kept == [ids, [new_id]]


def test_a_moved_run_keeps_working_and_a_missing_model_is_said(search_run, searcher, tmp_path):
    """Index paths inside the run are recorded relative to the index: moving the whole run keeps it working."""
    run = tmp_path / "before" / "run"
    run.mkdir(parents=True)
    for name in ("manifest.parquet", "partitions", "features"):
        (run / name).symlink_to((search_run / name).resolve())
    for name in ("targets", "model", "index"):  # real folders in the run, as a user's run has them
        shutil.copytree((search_run / name).resolve(), run / name)
    built = run_cli("index", "--run", run)  # reuses the copied index's embeddings: no embedding
    assert built.exit_code == 1 and "0 embedded now" in built.stdout, built.stdout + built.stderr
    recorded = json.loads((run / "index" / "index.json").read_text())
    tag_space = recorded["queries"]["tags"]
    assert recorded["model"]["path"] == "../model"
    assert recorded["spaces"][tag_space]["path"] == f"../targets/{tag_space}"
    moved = tmp_path / "after" / "run_moved"
    moved.parent.mkdir()
    (run.parent).rename(tmp_path / "before_gone")  # nothing is left where the run was
    (tmp_path / "before_gone" / "run").rename(moved)
    tags = run_cli("search", "--index", moved / "index", "--tags", "rock", "--json")
    assert tags.exit_code == 0, tags.stderr
    assert [h["track_id"] for h in json.loads(tags.stdout)["hits"]] == [h.track_id for h in
                                                                        searcher.by_tags("rock").hits]
    clip = audio_file(search_run, searcher.ids[3])
    by_audio = run_cli("search", "--index", moved / "index", "--audio", clip, "--json")
    assert by_audio.exit_code == 0, by_audio.stderr
    assert json.loads(by_audio.stdout)["query"]["same_as"] == searcher.by_audio(clip, k=1).query["same_as"]
    # a path still missing: the line says the index records it, and what to do
    (moved / "model").rename(moved / "model_elsewhere")
    line = one_error_line(run_cli("search", "--index", moved / "index", "--audio", clip))
    assert str(moved / "model") in line and "records that path" in line and "--model" in line
    given = run_cli("search", "--index", moved / "index", "--audio", clip, "--model", moved / "model_elsewhere")
    assert given.exit_code == 0, given.stderr
    (moved / "targets").rename(moved / "targets_elsewhere")
    line = one_error_line(run_cli("search", "--index", moved / "index", "--tags", "rock"))
    assert str(moved / "targets" / tag_space) in line and "records that path" in line and "build the index" in line


def test_add_an_embeddings_folder_past_the_exact_threshold(search_run, searcher, tmp_path):
    index = tmp_path / "index"
    built = run_cli("index", "--embeddings", search_run / "index" / "embeddings", "--manifest",
                    search_run / "manifest.parquet", "--exact-below", str(len(searcher) + 20), "--map", "pca",
                    "--out", index)
    assert built.exit_code == 1 and Searcher.open(index).description["spaces"]["audio"]["index"]["kind"] == "exact"
    tones = [write_tone(tmp_path / "tones" / f"tone{i:02d}.wav", seconds=1.0, freq=110.0 * (1 + i / 3))
             for i in range(24)]
    made = run_cli("embed", "--model", search_run / "model", "--out", tmp_path / "emb", "--audio", *tones)
    assert made.exit_code == 0, made.stderr
    result = run_cli("index", "--add", "--index", index, "--embeddings", tmp_path / "emb")
    assert result.exit_code == 0, result.stderr
    added = Searcher.open(index)
    assert len(added) == len(searcher) + 24
    # reaching the threshold made the exact index an approximate one, in every space
    assert {entry["index"]["kind"] for entry in added.description["spaces"].values()} == {"faiss-ivf"}
    hits = added.by_track("tone05", k=5).hits
    assert hits and "tone05" not in {h.track_id for h in hits}
    assert added.track("tone05")["title"] == ""  # no manifest given: an id and its vectors only
    vectors = np.load(index / "vectors" / "audio.npy")
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    pca = added.track("tone05")["xy"]  # PCA maps new points by its transform
    from musicrep.search.layout import MapLayout

    layout = MapLayout.load(index / "map.npz")
    assert np.allclose(pca, layout.place(vectors[added.ids.index("tone05")][None], np.zeros((1, 1, 2)),
                                         np.ones((1, 1)))[0], atol=1e-5)


def test_add_refuses_another_models_embeddings_and_needs_one_input(search_run, other_model, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(search_run / "index", index)
    folder = tmp_path / "emb"
    made = run_cli("embed", "--model", other_model, "--out", folder, "--audio",
                   write_tone(tmp_path / "tone.wav", seconds=3.0))
    assert made.exit_code == 0, made.stderr
    line = one_error_line(run_cli("index", "--add", "--index", index, "--embeddings", folder))
    assert str(folder) in line and "model_id" in line
    line = one_error_line(run_cli("index", "--add", "--index", index, "--model", other_model, "--audio",
                                  tmp_path / "tone.wav"))
    assert "model_id" in line
    assert "exactly one input" in one_error_line(run_cli("index", "--add", "--index", index))


# ------------------------------------------------------------------------------------------- refusals


def test_another_model_is_refused(search_run, other_model):
    line = one_error_line(run_cli("search", "--index", search_run / "index", "--model", other_model, "--track",
                                  "x"))
    assert "model_id" in line and str(search_run / "index") in line
    with pytest.raises(UsageError, match="model_id"):
        Searcher.open(search_run / "index", model=other_model)


def test_unknown_track_is_one_line(search_run, searcher):
    line = one_error_line(run_cli("search", "--index", search_run / "index", "--track", "no-such-track"))
    assert "unknown track 'no-such-track'" in line
    with pytest.raises(UnknownTrackError):
        searcher.by_track("../../etc/passwd")
    with pytest.raises(UnknownTrackError):
        searcher.audio_path("no-such-track")
    assert issubclass(UnknownTrackError, InputError)


def test_a_track_that_failed_to_index_says_so(search_run, searcher):
    failed = pd.read_csv(search_run / "index" / "failed.csv", dtype=str, keep_default_na=False)
    assert len(failed), "the demo's broken files should be listed"
    track_id, reason = failed.iloc[0]["track_id"], failed.iloc[0]["reason"]
    with pytest.raises(UnknownTrackError, match="is in the manifest but not indexed") as caught:
        searcher.by_track(track_id)
    assert f"(its audio failed: {reason})" in str(caught.value)
    line = one_error_line(run_cli("search", "--index", search_run / "index", "--track", track_id))
    assert f"{track_id!r} is in the manifest but not indexed (its audio failed: " in line
    assert "not in the index" in str(pytest.raises(UnknownTrackError, searcher.by_track, "no-such-track").value)


def test_tag_queries_are_echoed_in_the_users_order(search_run, searcher):
    result = searcher.by_tags("zzzunknown;rock")
    assert result.query["value"] == ["zzzunknown", "rock"] and result.query["known"] == ["rock"]
    printed = run_cli("search", "--index", search_run / "index", "--tags", "zzzunknown;rock")
    assert printed.exit_code == 0 and "tags 'zzzunknown;rock'" in printed.stdout, printed.stdout


def test_help_says_the_largest_k():
    from musicrep.search.query import MAX_K

    shown = run_cli("search", "--help")
    assert shown.exit_code == 0 and f"from 1 to {MAX_K}" in " ".join(shown.stdout.split()), shown.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--tags", ""], "empty tag query"),
    (["--tags", " ; , "], "empty tag query"),
    (["--text", "   "], "empty text query"),
    (["--text", "qwertyuiop zxcvbnm"], "no word of the query is known"),
    (["--tags", "nosuchtag"], "no tag of the query is known"),
    ([], "give exactly one query"),
    (["--tags", "rock", "--text", "rock"], "give exactly one query"),
    (["--tags", "rock", "--exclude-artist"], "--exclude-artist goes with --track or --audio"),
    (["--tags", "rock", "-k", "0"], "k must be a whole number from 1 to 1000"),
    (["--tags", "rock", "-k", "1001"], "k must be a whole number from 1 to 1000"),
])
def test_bad_queries_are_one_line(search_run, args, message):
    assert message in one_error_line(run_cli("search", "--index", search_run / "index", *args))


def test_bad_queries_from_python(searcher):
    with pytest.raises(UsageError, match="k must be"):
        searcher.by_track(searcher.ids[0], k=0)
    with pytest.raises(UsageError, match="k must be"):
        searcher.by_tags("rock", k=searcher.max_k + 1)
    with pytest.raises(UsageError, match="empty tag query"):
        searcher.by_tags([])
    with pytest.raises(UsageError, match="empty text query"):
        searcher.by_text("")
    assert len(searcher.by_tags("rock", k=searcher.max_k).hits) == len(searcher)  # k above n: every track


def test_non_audio_files_are_refused(search_run, searcher, tmp_path):
    bogus = tmp_path / "notes.wav"
    bogus.write_text("this is not audio\n" * 50)
    line = one_error_line(run_cli("search", "--index", search_run / "index", "--audio", bogus))
    assert str(bogus) in line
    with pytest.raises(InputError, match="notes.wav"):
        searcher.by_audio(bogus)
    # an mp3 decoder says what it tried in a warning first; the error is still one line naming the file
    fake_mp3 = tmp_path / "notes.mp3"
    fake_mp3.write_text("this is not audio\n" * 50)
    result = run_cli("search", "--index", search_run / "index", "--audio", fake_mp3)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    errors = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1 and str(fake_mp3) in errors[0]
    with pytest.raises(InputError, match="notes.mp3"):
        searcher.by_audio(fake_mp3)
    line = one_error_line(run_cli("search", "--index", search_run / "index", "--audio", tmp_path / "absent.wav"))
    assert "absent.wav" in line


def test_not_an_index_is_one_line(tmp_path):
    assert "not an index folder" in one_error_line(run_cli("search", "--index", tmp_path, "--tags", "rock"))
    assert "index folder not found" in one_error_line(run_cli("search", "--index", tmp_path / "nope", "--tags",
                                                              "rock"))
