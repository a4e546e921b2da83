"""Run directories: stages that remember they are done (``musicrep demo``, later ``run``).

Each finished stage writes ``RUN/done/<stage>.json`` with the hash of its
configuration (which includes the hashes of the stages it reads from), so a
re-run skips it while nothing upstream changed, and ``force`` redoes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from musicrep.data.align import MANIFEST_FILE, PROBLEMS_FILE, align
from musicrep.data.manifest import read_manifest
from musicrep.data.partition import SPLITS, SUMMARY_FILE, PartitionConfig, partition, write_partitions
from musicrep.data.sources import Problem, ProgressFn
from musicrep.data.sources.demo import DemoSource, plan_collection
from musicrep.features.extract import ExtractConfig, extract, latest_states
from musicrep.features.merge import STATS_FILE, merge
from musicrep.fileio import atomic_path, ensure_dir, write_json
from musicrep.tables import read_tidfile
from musicrep.targets.space import load_space
from musicrep.targets.tags import embed_tags
from musicrep.targets.text import embed_text
from musicrep.targets.triplets import MiningConfig, mine_triplets

logger = logging.getLogger(__name__)

DONE_DIR = "done"
TRIPLET_SPACE = "joint"  # the CBMI 2019 multi-label embedding
DEMO_RECIPE = Path(__file__).parent / "configs" / "demo.toml"


@dataclass
class StageResult:
    """One stage of a run: whether it ran or was skipped, and its config hash."""

    name: str
    config_hash: str
    skipped: bool


@dataclass
class RunReport:
    """What a run did and what went wrong."""

    run_dir: Path
    stages: list[StageResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    expected: dict[str, str] = field(default_factory=dict)
    triplets: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    """Validation nDCG@10 of the trained model, of the same network untrained, and the ceiling."""
    embeddings: dict[str, int] = field(default_factory=dict)
    """Tracks embedded per split."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """``RUN/report/metrics.json``: the test-split evaluation of the model next to the baselines."""
    index: dict[str, Any] = field(default_factory=dict)
    """``RUN/index``: tracks indexed, and the tracks that could not be (the demo's broken files)."""

    @property
    def unexpected(self) -> list[Problem]:
        """Problems that the demo did not plant on purpose."""
        return [p for p in self.problems if p.track_id not in self.expected]


def config_hash(config: dict[str, Any]) -> str:
    """Stable SHA-256 of a JSON-serializable configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def is_done(run_dir: Path, stage: str, digest: str, outputs: list[str]) -> bool:
    """True when ``stage`` finished with this config hash and its outputs exist."""
    marker = run_dir / DONE_DIR / f"{stage}.json"
    if not marker.is_file() or not all((run_dir / o).exists() for o in outputs):
        return False
    try:
        return json.loads(marker.read_text()).get("config_hash") == digest
    except (OSError, json.JSONDecodeError):
        return False


def mark_done(run_dir: Path, stage: str, digest: str, config: dict[str, Any]) -> None:
    """Record that ``stage`` finished."""
    write_json(
        {"stage": stage, "config_hash": digest, "config": config,
         "finished": datetime.now(UTC).isoformat(timespec="seconds")},
        run_dir / DONE_DIR / f"{stage}.json",
    )


def run_stage(
    run_dir: Path, stage: str, config: dict[str, Any], outputs: list[str],
    work: Callable[[], None], *, force: bool,
) -> StageResult:
    """Run ``work`` unless the stage is already done with the same config."""
    digest = config_hash(config)
    if not force and is_done(run_dir, stage, digest, outputs):
        logger.info("stage %s: already done, skipped", stage)
        return StageResult(stage, digest, skipped=True)
    marker = run_dir / DONE_DIR / f"{stage}.json"
    if marker.exists():
        marker.unlink()
    work()
    mark_done(run_dir, stage, digest, config)
    return StageResult(stage, digest, skipped=False)


def run_demo(
    out_dir: str | Path,
    *,
    tracks: int = 600,
    seed: int = 0,
    jobs: int | None = None,
    force: bool = False,
    on_stage: Callable[[str], None] | None = None,
    on_progress: ProgressFn | None = None,
    train: bool = True,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> RunReport:
    """Run every stage built so far on a fresh demo collection.

    Parameters
    ----------
    out_dir : path-like
        The run directory (layout in DESIGN.md).
    tracks, seed, jobs
        Demo collection size, seed and rendering processes.
    force : bool
        Redo stages even when done.
    on_stage : callable, optional
        Called with a stage name when it starts.
    on_progress : callable, optional
        ``(done, total)`` within a stage.
    train : bool
        Train ``configs/demo.toml``, export ``RUN/model``, embed the three splits into ``RUN/embeddings``,
        evaluate them on the test split next to the baselines (``RUN/report``) and index every track
        (``RUN/index``) (False: stop after the triplets).
    on_epoch : callable, optional
        ``(epoch, metrics)`` after each training epoch.
    """
    run_dir = ensure_dir(out_dir)
    report = RunReport(run_dir=run_dir)
    source = DemoSource(tracks=tracks, seed=seed) if jobs is None else DemoSource(tracks, seed, jobs)
    align_config = {"source": "demo", "tracks": tracks, "seed": seed}
    partition_config = PartitionConfig(seed=seed)
    _write_run_config(run_dir, {"align": align_config, "partition": _partition_dict(partition_config)})

    if on_stage:
        on_stage("align")
    aligned = run_stage(
        run_dir, "align", align_config, [MANIFEST_FILE, PROBLEMS_FILE],
        lambda: align(source, run_dir, on_progress=on_progress), force=force,
    )
    report.stages.append(aligned)
    manifest = read_manifest(run_dir / MANIFEST_FILE)
    report.problems = _read_problems(run_dir / PROBLEMS_FILE)
    plan, _ = plan_collection(tracks, seed)
    report.expected = {t.track_id: t.defect for t in plan if t.defect}

    if on_stage:
        on_stage("partition")
    config = {**_partition_dict(partition_config), "upstream": aligned.config_hash}
    outputs = [f"partitions/{s}.csv" for s in SPLITS] + ["partitions/summary.csv"]
    parted = run_stage(
        run_dir, "partition", config, outputs,
        lambda: write_partitions(manifest, partition(manifest, partition_config), run_dir / "partitions"),
        force=force or not aligned.skipped,
    )
    report.stages.append(parted)
    train_ids = read_tidfile(run_dir / "partitions" / "train.csv").track_ids

    if on_stage:
        on_stage("extract")
    features_dir = run_dir / "features"
    extract_config = ExtractConfig(crop=True, pad=True, precision=16)

    def run_extract() -> None:
        tids = pd.concat([read_tidfile(run_dir / "partitions" / f"{name}.csv", need_filename=True).tracks
                          for name in SPLITS])
        extract(tids, features_dir, extract_config, audio_root=manifest.audio_root, workers=jobs or 2,
                on_progress=on_progress)

    report.stages.append(run_stage(
        run_dir, "extract", {**extract_config.to_dict(), "upstream": parted.config_hash},
        ["features/extract_log.csv"], run_extract, force=force or not parted.skipped,
    ))
    def run_merge() -> None:
        train_csv = run_dir / "partitions" / "train.csv"
        merge(train_csv, features_dir, features_dir / "train", crop=True, pad=True)
        for name in ("val", "test"):
            merge(run_dir / "partitions" / f"{name}.csv", features_dir, features_dir / name, crop=True, pad=True,
                  stats_from=features_dir / "train" / STATS_FILE)
        shutil.copy(features_dir / "train" / STATS_FILE, features_dir / STATS_FILE)

    report.stages.append(run_stage(
        run_dir, "merge", {"crop": True, "pad": True, "upstream": report.stages[-1].config_hash},
        [f"features/{name}/features.npy" for name in SPLITS] + [f"features/{STATS_FILE}"], run_merge,
        force=force or not report.stages[-1].skipped,
    ))
    report.problems += [Problem(track_id, f"features/{track_id}", state.message, "failed")
                        for track_id, state in sorted(latest_states(features_dir).items()) if state.status == "failed"]

    if on_stage:
        on_stage("targets")
    targets_dir = run_dir / "targets"
    spaces = ["joint", *manifest.tagsets, "text"]

    def build_targets() -> None:
        embed_tags(manifest, train_ids, targets_dir, seed=seed)
        embed_text(manifest, train_ids, targets_dir, seed=seed)

    targeted = run_stage(
        run_dir, "targets", {"dims_tags": 340, "dims_text": 300, "seed": seed, "upstream": parted.config_hash},
        [f"targets/{name}/model.json" for name in spaces], build_targets, force=force or not parted.skipped,
    )
    report.stages.append(targeted)

    if on_stage:
        on_stage("triplets")
    mining = MiningConfig(seed=seed)

    def mine() -> None:
        result = mine_triplets(load_space(targets_dir / TRIPLET_SPACE), train_ids,
                               targets_dir / "triplets.parquet", mining, on_progress=on_progress)
        write_json({"space": TRIPLET_SPACE, "anchors": result.n_anchors, "unique_vectors": result.n_unique,
                    "anchors_with_positive": result.n_with_positive, "triplets": result.n_triplets},
                   targets_dir / "triplets_summary.json")

    report.stages.append(run_stage(
        run_dir, "triplets", {"space": TRIPLET_SPACE, **asdict(mining), "upstream": targeted.config_hash},
        ["targets/triplets.parquet", "targets/triplets_summary.json"], mine, force=force or not targeted.skipped,
    ))
    report.triplets = json.loads((targets_dir / "triplets_summary.json").read_text())
    if train:
        _train_and_embed(run_dir, report, force=force, on_stage=on_stage, on_progress=on_progress,
                         on_epoch=on_epoch)
    return report


def _train_and_embed(run_dir: Path, report: RunReport, *, force: bool, on_stage: Callable[[str], None] | None,
                     on_progress: ProgressFn | None, on_epoch: Callable[[int, dict[str, float]], None] | None) -> None:
    """The demo's last stages: train the demo recipe, export ``RUN/model``, embed every split."""
    from musicrep.inference.embed import embed
    from musicrep.training.recipe import load_recipe
    from musicrep.training.run import RunPaths, train

    if on_stage:
        on_stage("train")
    recipe = load_recipe(DEMO_RECIPE)
    upstream = report.stages[-1]
    summary = run_dir / "model" / "training.json"

    def run_training() -> None:
        result = train(recipe, RunPaths.of(run_dir), on_epoch=on_epoch)
        write_json({"validation": result.validation, "epochs": result.epochs}, summary)

    trained = run_stage(
        run_dir, "train", {"recipe": recipe.to_dict(), "upstream": upstream.config_hash},
        ["model/model.safetensors", "model/config.json", "model/training.json"], run_training,
        force=force or not upstream.skipped,
    )
    report.stages.append(trained)
    report.training = json.loads(summary.read_text())

    if on_stage:
        on_stage("embed")

    def embed_splits() -> None:
        for name in SPLITS:
            done = embed(run_dir / "model", run_dir / "embeddings" / name, store=run_dir / "features" / name,
                         on_progress=on_progress)
            report.embeddings[name] = done.n_embedded

    embedded = run_stage(
        run_dir, "embed", {"upstream": trained.config_hash},
        [f"embeddings/{name}/vectors.npy" for name in SPLITS], embed_splits, force=force or not trained.skipped,
    )
    report.stages.append(embedded)
    if not report.embeddings:
        report.embeddings = {name: len(pd.read_csv(run_dir / "embeddings" / name / "ids.csv")) for name in SPLITS}
    _evaluate_and_index(run_dir, report, embedded, force=force, on_stage=on_stage, on_progress=on_progress)


def _evaluate_and_index(run_dir: Path, report: RunReport, embedded: StageResult, *, force: bool,
                        on_stage: Callable[[str], None] | None, on_progress: ProgressFn | None) -> None:
    """The demo's use stages: the test-split report (``RUN/report``) and the search index (``RUN/index``)."""
    from musicrep.evaluation.evaluate import evaluate
    from musicrep.search.index import build_index

    if on_stage:
        on_stage("evaluate")
    metrics_file = run_dir / "report" / "metrics.json"

    def step(_name: str, done: int, total: int) -> None:
        if on_progress:
            on_progress(done, total)

    evaluated = run_stage(
        run_dir, "evaluate", {"upstream": embedded.config_hash}, ["report/metrics.json", "report/report.md"],
        lambda: evaluate(run_dir, on_progress=step), force=force or not embedded.skipped,
    )
    report.stages.append(evaluated)
    report.metrics = json.loads(metrics_file.read_text(encoding="utf-8"))

    if on_stage:
        on_stage("index")
    summary = run_dir / "index" / "build.json"

    def index_all() -> None:
        built = build_index(run_dir / "index", run=run_dir, on_progress=on_progress)
        write_json({"indexed": built.n_indexed, "failed": [list(item) for item in built.failed]}, summary)

    indexed = run_stage(
        run_dir, "index", {"upstream": embedded.config_hash}, ["index/index.json", "index/build.json"], index_all,
        force=force or not embedded.skipped,
    )
    report.stages.append(indexed)
    report.index = json.loads(summary.read_text(encoding="utf-8"))


def read_summary(run_dir: str | Path) -> pd.DataFrame:
    """The partition summary of a run directory."""
    return pd.read_csv(Path(run_dir) / "partitions" / SUMMARY_FILE, keep_default_na=False)


def _partition_dict(config: PartitionConfig) -> dict[str, Any]:
    return {"fractions": list(config.fractions), "group": config.group, "stratify": config.stratify,
            "train_with_text": config.train_with_text, "val_fraction": config.val_fraction,
            "seed": config.seed}


def _read_problems(path: Path) -> list[Problem]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return [Problem(r.track_id, r.file, r.reason, r.action) for r in frame.itertuples(index=False)]


def _write_run_config(run_dir: Path, sections: dict[str, dict[str, Any]]) -> None:
    """Write ``RUN/config.toml``: the configuration that produced the run."""
    lines = ["# written by musicrep: the configuration that produced this run", ""]
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None]
        lines.append("")
    with atomic_path(run_dir / "config.toml") as tmp:
        tmp.write_text("\n".join(lines))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))
