"""Training recipes: TOML files whose sections are dataclasses; an unknown key or a wrong type is an error.

::

    [model]
    name = "kim2019"            # registry name; other keys are the architecture's parameters
    width = 1.0

    [[tasks]]
    space = "joint"             # a folder under RUN/targets/
    objective = "triplet"       # triplet | offline | contrastive | classification
    weight = 1.0

    [train]
    epochs = 30
    batch_size = 64
    lr = 1e-4
    seed = 0
    crop_frames = 216

    [augment]                   # off by default, as in the papers
    time_mask = 0
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from musicrep.errors import UsageError
from musicrep.models import model_parameters

OBJECTIVES = ("triplet", "offline", "contrastive", "classification")


@dataclass
class TaskRecipe:
    """One task: an objective on one target space (a folder under ``RUN/targets/``).

    Parameters
    ----------
    space : str
        The target space folder name (``joint``, ``genres``, ``text``, ...).
    objective : {"triplet", "offline", "contrastive", "classification"}
    weight : float
        Its share of the total loss.
    name : str
        Task name in logs and in the model folder (default: the space).
    pos, neg : float
        Relatedness thresholds (cosine in the space): positive >= pos, negative < neg (the original 0.90 / 0.85).
    margin : float
        Triplet margin (1.0 as the original, Euclidean).
    distance : {"euclidean", "cosine"}
    mining : {"batch-hard", "semi-hard"}
        Online mining inside the batch (``triplet``).
    exclude_same_artist : bool
        Positives and negatives are tracks of other artists only (in batches and in mining), as the
        artist-filtered evaluation counts them; otherwise an album's tracks, sharing its tags, teach the
        network its artist's timbre.
    negatives : {"threshold", "disjoint"}
        ``disjoint``: a negative must also share no label of the space (the remedy for collections whose few
        distinct tag combinations make tracks sharing most labels negatives of each other).
    triplets : str
        ``offline``: the triplets file, relative to ``RUN/targets/`` (``triplets.parquet``).
    temperature : float
        ``contrastive``: the initial (or fixed) temperature.
    learn_temperature : bool
    temperature_lr : float
        Its own learning rate (default: the training ``lr``).
    """

    space: str
    objective: str = "triplet"
    weight: float = 1.0
    name: str = ""
    pos: float = 0.90
    neg: float = 0.85
    margin: float = 1.0
    distance: str = "euclidean"
    mining: str = "batch-hard"
    exclude_same_artist: bool = True
    negatives: str = "threshold"
    triplets: str = "triplets.parquet"
    temperature: float = 0.07
    learn_temperature: bool = True
    temperature_lr: float = 0.0

    def __post_init__(self) -> None:
        self.name = self.name or self.space


@dataclass
class TrainRecipe:
    """The loop's settings.

    Parameters
    ----------
    epochs : int
    batch_size : int
        Tracks per batch (the original used 1,000 on a GPU).
    lr : float
        Adam learning rate (1e-4 as the original).
    weight_decay : float
    seed : int
        Seeds weights, crops and batches: the same recipe and seed give the same weights on CPU.
    crop_frames : int
        Random crops of this many frames inside the valid frames (216, about 2.5 s); also the inference window.
    group_size : int
        Tracks per anchor in a batch: the anchor and up to ``group_size - 1`` of its positives, so anchors
        have positives in their batch.
    patience : int
        Early stopping: epochs without a better validation nDCG@10 (0: never stop early).
    num_workers : int
        Data-loading processes (-1: one, leaving the other core to the network on a 2-core machine).
    val_every : int
        Validate every N epochs.
    precision : str
        Lightning precision (``32-true``, ``16-mixed``, ``bf16-mixed``).
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    seed: int = 0
    crop_frames: int = 216
    group_size: int = 4
    patience: int = 10
    num_workers: int = -1
    val_every: int = 1
    precision: str = "32-true"


@dataclass
class AugmentRecipe:
    """SpecAugment-style masking, mixup and gain jitter on the training crops (off by default).

    Parameters
    ----------
    time_mask, freq_mask : int
        Width (frames / mel bands) of at most one mask of each kind per crop, set to the crop's floor.
    mixup : float
        Probability of mixing a crop with another of the batch (in dB: the louder wins per bin).
    gain_db : float
        Uniform random gain in +-gain_db dB.
    """

    time_mask: int = 0
    freq_mask: int = 0
    mixup: float = 0.0
    gain_db: float = 0.0


@dataclass
class Recipe:
    """A whole recipe: the model, its tasks, the loop and augmentation."""

    model: dict[str, Any]
    tasks: list[TaskRecipe]
    train: TrainRecipe = field(default_factory=TrainRecipe)
    augment: AugmentRecipe = field(default_factory=AugmentRecipe)
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return data


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe; every problem is a :class:`UsageError` naming the file and the key."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{file}: recipe not found")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: not valid TOML ({exc})") from exc
    return recipe_from_dict(data, source=str(file))


def recipe_from_dict(data: dict[str, Any], *, source: str = "recipe") -> Recipe:
    """A :class:`Recipe` from parsed TOML (see :func:`load_recipe`)."""
    unknown = sorted(set(data) - {"model", "tasks", "train", "augment"})
    if unknown:
        raise UsageError(f"{source}: unknown section [{unknown[0]}] (sections: model, tasks, train, augment)")
    model = dict(data.get("model") or {})
    name = model.pop("name", None)
    if not isinstance(name, str):
        raise UsageError(f"{source}: [model] needs name = \"kim2019\" or another registered model")
    try:
        known = model_parameters(name)
    except UsageError as exc:
        raise UsageError(f"{source}: [model] {exc}") from None
    for key, value in model.items():
        if key not in known:
            raise UsageError(f"{source}: unknown key {key!r} in [model] ({name} takes {', '.join(known)})")
        _check_type(source, f"model.{key}", value, type(known[key]))
    tasks = data.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise UsageError(f"{source}: needs at least one [[tasks]] section")
    for i, task in enumerate(tasks):
        _check_objective_keys(task, f"tasks[{i}]", source)
    recipe = Recipe(
        model={"name": name, "params": model},
        tasks=[_section(TaskRecipe, task, f"tasks[{i}]", source) for i, task in enumerate(tasks)],
        train=_section(TrainRecipe, data.get("train", {}), "train", source),
        augment=_section(AugmentRecipe, data.get("augment", {}), "augment", source),
        path=source,
    )
    _check_values(recipe, source)
    return recipe


_OBJECTIVE_KEYS = {
    "triplet": {"pos", "neg", "margin", "distance", "mining", "negatives", "exclude_same_artist"},
    "offline": {"margin", "distance", "triplets"},
    "contrastive": {"pos", "temperature", "learn_temperature", "temperature_lr"},
    "classification": set(),
}
"""Keys a task may set beside space, objective, weight and name, by objective (others would be ignored)."""


def _check_objective_keys(task: Any, where: str, source: str) -> None:
    if not isinstance(task, dict) or task.get("objective", "triplet") not in _OBJECTIVE_KEYS:
        return  # reported by the section and value checks
    objective = task.get("objective", "triplet")
    allowed = _OBJECTIVE_KEYS[objective] | {"space", "objective", "weight", "name"}
    ignored = sorted(k for k in task if k not in allowed and k in {f.name for f in fields(TaskRecipe)})
    if ignored:
        raise UsageError(f"{source}: {ignored[0]!r} in [{where}] does not apply to the {objective} objective "
                         f"(it takes {', '.join(sorted(_OBJECTIVE_KEYS[objective])) or 'no options'})")


def _section(cls: type, values: Any, where: str, source: str):
    if not isinstance(values, dict):
        raise UsageError(f"{source}: [{where}] must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for key, value in values.items():
        if key not in names:
            raise UsageError(f"{source}: unknown key {key!r} in [{where}] (keys: {', '.join(sorted(names))})")
        _check_type(source, f"{where}.{key}", value, hints[key])
    try:
        return cls(**values)
    except TypeError as exc:  # a required key is missing
        raise UsageError(f"{source}: [{where}] {exc}") from exc


def _check_type(source: str, key: str, value: Any, expected: Any) -> None:
    allowed = typing.get_args(expected) if isinstance(expected, types.UnionType) else (expected,)
    allowed = tuple(float if a is float else a for a in allowed)
    ok = any(
        (a is float and isinstance(value, int | float) and not isinstance(value, bool))
        or (a is int and isinstance(value, int) and not isinstance(value, bool))
        or (a not in (int, float) and isinstance(value, a))
        for a in allowed if isinstance(a, type)
    )
    if not ok:
        names = " or ".join(getattr(a, "__name__", str(a)) for a in allowed)
        raise UsageError(f"{source}: {key} must be {names} (got {value!r})")


def _check_values(recipe: Recipe, source: str) -> None:
    checks = [(t.objective in OBJECTIVES, f"tasks.objective must be one of {', '.join(OBJECTIVES)} "
               f"(got {t.objective!r} for {t.name})") for t in recipe.tasks]
    checks += [(t.distance in ("euclidean", "cosine"), f"tasks.distance must be euclidean or cosine ({t.name})")
               for t in recipe.tasks]
    checks += [(t.mining in ("batch-hard", "semi-hard"), f"tasks.mining must be batch-hard or semi-hard ({t.name})")
               for t in recipe.tasks]
    checks += [(t.negatives in ("threshold", "disjoint"), f"tasks.negatives must be threshold or disjoint ({t.name})")
               for t in recipe.tasks]
    checks += [(t.weight >= 0, f"tasks.weight must be >= 0 ({t.name})") for t in recipe.tasks]
    names = [t.name for t in recipe.tasks]
    twice = sorted({n for n in names if names.count(n) > 1})
    checks.append((not twice, f"two tasks are named {twice[0]!r} (give one a name = ...)" if twice else ""))
    train = recipe.train
    checks += [
        (train.epochs >= 1, f"train.epochs must be at least 1 (got {train.epochs})"),
        (train.batch_size >= 2, f"train.batch_size must be at least 2 (got {train.batch_size})"),
        (train.lr > 0, f"train.lr must be positive (got {train.lr})"),
        (train.crop_frames >= 1, f"train.crop_frames must be positive (got {train.crop_frames})"),
        (train.group_size >= 1, f"train.group_size must be at least 1 (got {train.group_size})"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(f"{source}: {message}")
