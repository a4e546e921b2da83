"""The evaluation report: ``metrics.json``, ``report.md``, PNG figures, and the comparison of runs.

``metrics.json`` (strict JSON: a metric that could not be computed is ``null``)::

    {"format_version": 1, "musicrep_version": "...",
     "inputs": {...}, "settings": {"ks": [1, 5, 10, 20, 50], "tagsets": ["genres"], "headline_rule": ...},
     "splits": {"test": {"partition": n, "tracks": n, "left_out": [{"track_id", "reason"}]}, ...},
     "relevance": {"joint": {...}, "text": {...}}, "labels": {TAGSET: {"single_in_test": [...], ...}},
     "methods": {NAME: {"dim": D, "kind": "embeddings"|"baseline", "description": "...",
                        "retrieval": {TAGSET: {"artist_filtered": {"P@10": x, "MAP@10": x, "nDCG@10": x,
                                                                   "nDCG_text@10": x, ..., "queries": n,
                                                                   "skipped": n, "nDCG_queries": n, ...},
                                               "unfiltered": {...}}},
                        "probes": {TAGSET: {"roc_auc": x, "pr_auc": x} or {"accuracy": x, "macro_f1": x},
                                   plus "kind", "chosen", "unscorable", "per_label", "counts";
                                   or {"error": "..."} when the probe could not run}
                                  ({} when not probed: the oracle, --no-probes)}},
     "notes": [...], "problems": [...], "report": {"dir": "...", "files": [...]}}

Figures (matplotlib's object API, rendered by Agg: no pyplot, no display): ``precision_at_k.png`` (P@k
per method), ``per_label_<tagset>.png`` (each probed label's ROC-AUC, or F1 for a
single-label tagset, per method), ``map_tsne.png`` (a t-SNE map, scikit-learn, of
one method's test embeddings coloured by label) and ``training_curves.png`` when
the run has training logs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrep.errors import InputError, UsageError
from musicrep.fileio import atomic_path, ensure_dir

logger = logging.getLogger(__name__)

METRICS_FILE, REPORT_FILE, COMPARE_FILE = "metrics.json", "report.md", "compare.md"
MAP_POINTS = 3000
"""At most this many test tracks on the t-SNE map (a seeded sample beyond)."""
PROBE_METRICS = {"multi-label": ("roc_auc", "ROC-AUC"), "single-label": ("accuracy", "accuracy")}
PER_LABEL_METRIC = {"multi-label": ("roc_auc", "ROC-AUC"), "single-label": ("f1", "F1")}


# ------------------------------------------------------------------------------------------- report


def write_report(metrics: dict[str, Any], out_dir: str | Path, *, logs: Path | None = None, plots: bool = True,
                 map_vectors: np.ndarray | None = None, map_labels: Sequence[Sequence[str]] | None = None,
                 map_method: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Write the figures, ``report.md`` and (last) ``metrics.json`` into ``out_dir``.

    Parameters
    ----------
    metrics : dict
        As :func:`musicrep.evaluation.evaluate.evaluate` builds it (JSON-safe).
    logs : Path, optional
        The run's ``logs/`` folder: training curves from its CSV logs.
    map_vectors, map_labels, map_method
        The test embeddings drawn on the map, their labels (colour: the first) and the method's name.

    Returns
    -------
    dict
        ``metrics`` with ``report`` (folder and files) added, as written to ``metrics.json``.
    """
    out = ensure_dir(out_dir)
    figures: dict[str, str] = {}
    if plots:
        figures.update(_figures(metrics, out, logs=logs, map_vectors=map_vectors, map_labels=map_labels,
                                map_method=map_method, seed=seed))
    _remove_stale_figures(out, keep=set(figures.values()))
    metrics = {**metrics, "report": {"dir": str(out), "files": [METRICS_FILE, REPORT_FILE, *figures.values()],
                                     "figures": figures, "map_method": map_method if "map" in figures else None}}
    with atomic_path(out / REPORT_FILE) as tmp:
        tmp.write_text(render_markdown(metrics), encoding="utf-8")
    with atomic_path(out / METRICS_FILE) as tmp:  # not write_json: its sorted keys would lose the table's order
        tmp.write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return metrics


FIGURE_PATTERNS = ("precision_at_k.png", "per_label_*.png", "map_tsne.png", "training_curves.png")
"""The figures a report writes: those of an earlier report in the same folder that this one did not draw
are removed, so the folder never shows a figure that report.md and metrics.json do not describe."""


def _remove_stale_figures(out: Path, keep: set[str]) -> None:
    for pattern in FIGURE_PATTERNS:
        for path in out.glob(pattern):
            if path.name not in keep:
                path.unlink(missing_ok=True)


def headline(metrics: dict[str, Any]) -> tuple[str, int]:
    """The main table's rule and ``k`` (10 when scored, else the middle ``k``)."""
    settings = metrics["settings"]
    ks = settings["ks"]
    return settings.get("headline_rule", "artist_filtered"), 10 if 10 in ks else ks[len(ks) // 2]


def main_table(metrics: dict[str, Any], *, rule: str | None = None, k: int | None = None
               ) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main table: method, dim, P@k / MAP@k per tagset, nDCG@k, a probe metric per tagset."""
    default_rule, default_k = headline(metrics)
    rule, k = rule or default_rule, k or default_k
    tagsets = metrics["settings"]["tagsets"]
    probe_tagsets = metrics["settings"].get("probe_tagsets", [])
    methods = metrics["methods"]
    graded = [name for name in ("nDCG", "nDCG_text") if any(
        f"{name}@{k}" in (m["retrieval"][tagsets[0]][rule]) for m in methods.values())]
    header = ["method", "dim"]
    for tagset in tagsets:
        header += [f"P@{k} {tagset}", f"MAP@{k} {tagset}"]
    header += [f"{name}@{k}" for name in graded]
    kinds = {t: _probe_kind(methods, t) for t in probe_tagsets}
    header += [f"{t} {PROBE_METRICS[kinds[t]][1]}" if kinds[t] else f"{t} probe" for t in probe_tagsets]
    rows = []
    for name, method in methods.items():
        retrieval = method["retrieval"]
        row = [name, str(method["dim"])]
        for tagset in tagsets:
            scores = retrieval[tagset][rule]
            row += [_number(scores.get(f"P@{k}")), _number(scores.get(f"MAP@{k}"))]
        row += [_number(retrieval[tagsets[0]][rule].get(f"{g}@{k}")) for g in graded]
        for tagset in probe_tagsets:
            probe = (method.get("probes") or {}).get(tagset)
            row.append(_number(probe.get(PROBE_METRICS[kinds[tagset]][0])) if probe and kinds[tagset] else "–")
        rows.append(row)
    return header, rows


def render_markdown(metrics: dict[str, Any]) -> str:
    """``report.md``: the main table first, then the details, the problems and the figures."""
    rule, k = headline(metrics)
    settings = metrics["settings"]
    splits = metrics["splits"]
    tagsets = settings["tagsets"]
    where = metrics["inputs"].get("run") or metrics["inputs"]["manifest"]
    rule_words = ("artist-filtered: tracks by the query's artist are not candidates" if rule == "artist_filtered"
                  else "unfiltered: every other test track is a candidate")
    lines = [
        f"# Evaluation report: {where}", "",
        f"Test split: {splits['test']['tracks']} tracks ({splits['test']['partition']} in the partition). "
        f"Retrieval: each test track queries the other test tracks by cosine similarity, {rule_words}. "
        f"Probes: trained on {splits['train']['tracks']} train tracks, chosen on {splits['val']['tracks']} val "
        "tracks, scored on test.", "",
        f"## Main table (k = {k}, {rule.replace('_', '-')})", "",
        *markdown_table(*main_table(metrics)), "",
        f"- P@{k} / MAP@{k}: relevant = shares a label of the tagset. nDCG: graded by cosine similarity in the joint "
        "tag space (nDCG_text: in the text space; tracks without a text are relevant to nothing there).",
        "- A query with fewer candidates than k retrieves them all: its precision is the relevant share of what it "
        "retrieved (not of k). A query without any relevant candidate is skipped (counted), never scored 0.",
        "- Probes: ROC-AUC is macro over the labels with a positive and a negative in test (multi-label tagsets); "
        "accuracy for single-label tagsets (macro-F1 and one-vs-rest ROC-AUC in the details).",
        "- Baselines: " + "; ".join(f"**{name}**: {m['description']}" for name, m in metrics["methods"].items()
                                    if m["kind"] == "baseline") + ".",
    ]
    lines += [f"- {note}" for note in metrics.get("notes", [])]
    lines += ["", "## Retrieval", ""]
    lines += _retrieval_details(metrics)
    lines += ["## Probes", ""]
    lines += _probe_details(metrics)
    lines += ["## Labels and tracks", ""]
    lines += _label_details(metrics)
    problems = metrics.get("problems") or []
    if problems:
        lines += ["## Problems", "", *[f"- {p}" for p in problems], ""]
    lines += _figure_section(metrics, tagsets)
    return "\n".join(lines).rstrip() + "\n"


def _retrieval_details(metrics: dict[str, Any]) -> list[str]:
    ks = metrics["settings"]["ks"]
    methods = metrics["methods"]
    lines = []
    for rule in metrics["settings"]["rules"]:
        words = rule.replace("_", "-")
        for tagset in metrics["settings"]["tagsets"]:
            header = ["method"] + [f"P@{k}" for k in ks] + [f"MAP@{k}" for k in ks] + ["queries", "skipped"]
            rows = []
            for name, method in methods.items():
                scores = method["retrieval"][tagset][rule]
                rows.append([name] + [_number(scores.get(f"P@{k}")) for k in ks]
                            + [_number(scores.get(f"MAP@{k}")) for k in ks]
                            + [str(scores.get("queries")), str(scores.get("skipped"))])
            lines += [f"### {tagset}, {words}", "", *markdown_table(header, rows), ""]
        first = next(iter(methods.values()))["retrieval"][metrics["settings"]["tagsets"][0]][rule]
        graded = [g for g in ("nDCG", "nDCG_text") if f"{g}@{ks[0]}" in first]
        if graded:
            header = ["method"] + [f"{g}@{k}" for g in graded for k in ks]
            header += [f"{g} {c}" for g in graded for c in ("queries", "skipped")]
            rows = []
            for name, method in methods.items():
                scores = method["retrieval"][metrics["settings"]["tagsets"][0]][rule]
                rows.append([name] + [_number(scores.get(f"{g}@{k}")) for g in graded for k in ks]
                            + [str(scores.get(f"{g}_{c}")) for g in graded for c in ("queries", "skipped")])
            lines += [f"### graded relevance, {words}", "", *markdown_table(header, rows), ""]
    lines.append("Skipped queries have no relevant candidate: they are counted and left out of the mean, never "
                 "scored 0 (P/MAP: no other candidate shares a label of the tagset; nDCG: none is related in the "
                 "space, e.g. a track without a text in the text space).")
    lines.append("")
    for space, info in metrics.get("relevance", {}).items():
        if info.get("available"):
            lines.append(f"- {space} space ({info['space']}, {info['dims']} dims): {info['tracks_with_vector']} of "
                         f"{info['tracks']} test tracks have a vector.")
        else:
            lines.append(f"- {space} space: not available (no {space}/ in the targets), so no "
                         f"{'nDCG' if space == 'joint' else 'nDCG_text'}.")
    return lines + [""]


def _probe_details(metrics: dict[str, Any]) -> list[str]:
    lines = []
    methods = metrics["methods"]
    for tagset in metrics["settings"].get("probe_tagsets", []):
        kind = _probe_kind(methods, tagset)
        columns = ("roc_auc", "pr_auc") if kind == "multi-label" else ("accuracy", "macro_f1")
        header = ["method", *columns, "chosen", "val score"]
        rows, errors, unscorable = [], [], {}
        for name, method in methods.items():
            probe = (method.get("probes") or {}).get(tagset)
            if probe is None:
                continue
            if "error" in probe:
                errors.append(f"{name}: {probe['error']}")
                continue
            chosen = probe.get("chosen", {})
            params = ", ".join(f"{key}={value}" for key, value in (chosen.get("params") or {}).items())
            rows.append([name, *[_number(probe.get(c)) for c in columns], f"{chosen.get('model')} ({params})",
                         _number(chosen.get("val_score"))])
            for label, reason in probe.get("unscorable", []):
                unscorable.setdefault((label, reason), []).append(name)
        lines += [f"### {tagset} ({kind or 'not probed'})", ""]
        if rows:
            lines += [*markdown_table(header, rows), ""]
        lines += [f"- could not probe {e}" for e in errors]
        if unscorable:
            lines.append("- labels that cannot be scored: " + "; ".join(
                f"{label} ({reason})" for (label, reason) in sorted({key for key in unscorable})))
        lines.append("")
    return lines


def _label_details(metrics: dict[str, Any]) -> list[str]:
    lines = []
    for tagset, summary in metrics.get("labels", {}).items():
        single, only = summary.get("single_in_test", []), summary.get("only_in_test", [])
        lines.append(f"- {tagset}: {len(summary.get('test_counts', {}))} labels in test; "
                     f"with fewer than 2 test tracks: {', '.join(single) or 'none'} (their tracks find no relevant "
                     f"candidate by that label); only in test: {', '.join(only) or 'none'}; test tracks without a "
                     f"label: {summary.get('test_tracks_without_label', 0)}.")
    for split, info in metrics["splits"].items():
        left = info.get("left_out") or []
        shown = "; ".join(f"{x['track_id']} ({x['reason']})" for x in left[:20])
        more = f"; ... {len(left) - 20} more (metrics.json lists all)" if len(left) > 20 else ""
        lines.append(f"- {split}: {info['tracks']} of {info['partition']} tracks evaluated"
                     + (f"; left out: {shown}{more}" if left else "") + ".")
    return lines + [""]


def _figure_section(metrics: dict[str, Any], tagsets: list[str]) -> list[str]:
    report = metrics.get("report", {})
    figures = report.get("figures", {})
    if not figures:
        return []
    captions = {
        "precision": f"precision@k on the test split ({tagsets[0]}, {headline(metrics)[0].replace('_', '-')})",
        "map": f"t-SNE (scikit-learn) map of the test embeddings of {report.get('map_method')}, "
               f"coloured by the first {tagsets[0]} label",
        "training": "training curves (from the run's CSV logs)",
    }
    lines = ["## Figures", ""]
    for key, file in figures.items():
        caption = captions.get(key) or f"per-label probe scores: {key.removeprefix('per_label_')}"
        lines += [f"![{caption}]({file})", "", f"*{caption}*", ""]
    return lines


# ------------------------------------------------------------------------------------------- figures


def _figures(metrics: dict[str, Any], out: Path, *, logs: Path | None, map_vectors: np.ndarray | None,
             map_labels: Sequence[Sequence[str]] | None, map_method: str | None, seed: int) -> dict[str, str]:
    figures = {"precision": _save(_precision_figure(metrics), out / "precision_at_k.png")}
    for tagset in metrics["settings"].get("probe_tagsets", []):
        figure = _per_label_figure(metrics, tagset)
        if figure is not None:
            figures[f"per_label_{tagset}"] = _save(figure, out / f"per_label_{tagset}.png")
    if map_vectors is not None and map_labels is not None and len(map_vectors) >= 3:
        figures["map"] = _save(_map_figure(map_vectors, map_labels, map_method or "", seed,
                                           metrics["settings"]["tagsets"][0]), out / "map_tsne.png")
    curves = _training_log(logs)
    if curves is not None:
        figures["training"] = _save(_training_figure(curves), out / "training_curves.png")
    return figures


def _save(figure: Any, path: Path) -> str:
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    return path.name


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend switch

    return Figure(figsize=(width, height))


def _precision_figure(metrics: dict[str, Any]) -> Any:
    rule, _ = headline(metrics)
    tagset = metrics["settings"]["tagsets"][0]
    ks = metrics["settings"]["ks"]
    figure = _new_figure(6.5, 4.0)
    axes = figure.add_subplot()
    for name, method in metrics["methods"].items():
        scores = method["retrieval"][tagset][rule]
        values = [np.nan if scores.get(f"P@{k}") is None else scores[f"P@{k}"] for k in ks]
        axes.plot(ks, values, marker="o", label=f"{name} ({method['dim']}-d)",
                  linestyle="--" if method["kind"] == "baseline" else "-")
    axes.set_xscale("log")
    axes.set_xticks(ks, [str(k) for k in ks])
    axes.set_xlabel("k")
    axes.set_ylabel(f"precision@k ({tagset})")
    axes.set_ylim(0, 1)
    axes.set_title(f"precision@k, test split, {rule.replace('_', '-')}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def _per_label_figure(metrics: dict[str, Any], tagset: str) -> Any | None:
    methods = {name: m["probes"][tagset] for name, m in metrics["methods"].items()
               if tagset in (m.get("probes") or {}) and "per_label" in m["probes"][tagset]}
    if not methods:
        return None
    kind = next(iter(methods.values()))["kind"]
    column, title = PER_LABEL_METRIC[kind]
    labels = [row["label"] for row in next(iter(methods.values()))["per_label"]]
    width = 0.8 / len(methods)
    figure = _new_figure(max(6.0, 0.35 * len(labels) * max(1, len(methods)) ** 0.5 + 2), 4.0)
    axes = figure.add_subplot()
    positions = np.arange(len(labels))
    for i, (name, probe) in enumerate(methods.items()):
        value = {row["label"]: row.get(column) for row in probe["per_label"]}
        heights = [np.nan if value.get(label) is None else value[label] for label in labels]
        axes.bar(positions + i * width - 0.4 + width / 2, heights, width, label=name)
    axes.set_xticks(positions, labels, rotation=60, ha="right", fontsize=8)
    axes.set_ylabel(f"{title} on test")
    axes.set_ylim(0, 1)
    if kind == "multi-label":
        axes.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    axes.set_title(f"{tagset}: per-label {title} of the probes (missing bar: not scorable)")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure


def _map_figure(vectors: np.ndarray, labels: Sequence[Sequence[str]], method: str, seed: int, tagset: str) -> Any:
    from sklearn.manifold import TSNE

    vectors = np.asarray(vectors, dtype=np.float64)
    rows = np.arange(len(vectors))
    if len(rows) > MAP_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=MAP_POINTS, replace=False))
    norms = np.linalg.norm(vectors[rows], axis=1, keepdims=True)
    unit = np.divide(vectors[rows], norms, out=np.zeros_like(vectors[rows]), where=norms > 0)
    perplexity = float(max(1.0, min(30.0, (len(rows) - 1) / 3)))
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(unit)
    colour_of = [labels[r][0] if len(labels[r]) else "(none)" for r in rows]
    names = sorted(set(colour_of))
    figure = _new_figure(6.5, 5.5)
    axes = figure.add_subplot()
    from matplotlib import colormaps

    palette = colormaps["tab20"]
    for i, name in enumerate(names):
        mask = np.array([c == name for c in colour_of])
        axes.scatter(points[mask, 0], points[mask, 1], s=14, color=palette(i % 20), label=name)
    axes.set_xticks([])
    axes.set_yticks([])
    sample = f", {len(rows)} of {len(vectors)} tracks" if len(rows) < len(vectors) else ""
    axes.set_title(f"t-SNE (scikit-learn) of {method}'s test embeddings{sample}, by {tagset}", fontsize=9)
    axes.legend(fontsize=7, markerscale=1.2, loc="best")
    return figure


def _training_log(logs: Path | None) -> pd.DataFrame | None:
    if logs is None or not Path(logs).is_dir():
        return None
    files = sorted(Path(logs).glob("**/metrics.csv"))
    if not files:
        return None
    try:
        return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        logger.warning("%s: training log unreadable (%s); no training curves", files[0], exc)
        return None


def _training_figure(log: pd.DataFrame) -> Any:
    figure = _new_figure(9.0, 3.5)
    left, right = figure.subplots(1, 2)
    for axes, columns in ((left, [c for c in log.columns if c == "loss" or c.startswith("loss/")]),
                          (right, [c for c in log.columns if c.startswith("val/")])):
        for column in columns:
            series = log[["epoch", column]].dropna().groupby("epoch")[column].last()  # after the epoch
            axes.plot(series.index + 1, series.values, marker=".", label=column,
                      linewidth=2 if column in ("loss", "val/ndcg@10") else 1)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        if columns:
            axes.legend(fontsize=7)
    left.set_title("training loss")
    right.set_title("validation")
    return figure


# ------------------------------------------------------------------------------------------- compare


@dataclass
class Comparison:
    """The table across runs, as :func:`compare` prints and writes it."""

    header: list[str]
    rows: list[list[str]]
    markdown: str
    path: Path | None
    notes: list[str] = field(default_factory=list)
    """What makes rows of different runs less comparable (different test splits), and runs given twice."""


def read_metrics(path: str | Path) -> dict[str, Any]:
    """``metrics.json`` of a run (``RUN``), a report folder or the file itself.

    Raises
    ------
    InputError
        No metrics.json there (says to run ``musicrep evaluate`` first), or not one evaluate wrote.
    """
    given = Path(path)
    if not given.exists():
        raise InputError(f"{given}: does not exist")
    for candidate in (given, given / METRICS_FILE, given / "report" / METRICS_FILE):
        if candidate.is_file():
            break
    else:
        raise InputError(f"{given}: no report/{METRICS_FILE} (run `musicrep evaluate --run {given}` first)")
    try:
        data = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{candidate}: unreadable metrics file ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("methods"), dict) or "settings" not in data:
        raise InputError(f"{candidate}: not a metrics.json written by musicrep evaluate")
    return data


def compare(runs: Sequence[str | Path], *, out: str | Path | None = None, rule: str | None = None
            ) -> Comparison:
    """One table across runs: each run's methods with their main-table metrics, written as Markdown.

    Parameters
    ----------
    runs : sequence of path-like
        Run directories (their ``report/metrics.json``), report folders or ``metrics.json`` files.
    out : path-like, optional
        A ``.md`` file, or a folder (``compare.md`` in it); default ``./compare.md``.
    rule : {"artist_filtered", "unfiltered"}, optional
        Default: each run's headline rule.

    Returns
    -------
    Comparison
    """
    if not runs:
        raise UsageError("--compare needs the runs to compare: musicrep evaluate --compare RUN1 RUN2 ...")
    if rule is not None and rule not in ("artist_filtered", "unfiltered"):
        raise UsageError(f"rule must be artist_filtered or unfiltered (got {rule!r})")
    notes: list[str] = []
    loaded: list[tuple[Path, dict[str, Any]]] = []
    seen: dict[Path, Path] = {}
    for given in map(Path, runs):
        metrics = read_metrics(given)
        key = _metrics_file(given).resolve()
        if key in seen:
            notes.append(f"{given}: the same report as {seen[key]}, shown once")
            continue
        seen[key] = given
        loaded.append((given, metrics))
    names = [_run_name(p) for p, _ in loaded]
    names = [str(p) if names.count(n) > 1 else n for (p, _), n in zip(loaded, names, strict=True)]
    notes += _split_notes(names, [m for _, m in loaded])
    common_ks = set.intersection(*(set(m["settings"]["ks"]) for _, m in loaded))
    k = 10 if 10 in common_ks else (max(common_ks) if common_ks else None)
    if k is None:
        raise UsageError("the runs share no k (evaluate them with the same --k)")
    tables = [main_table(m, rule=rule, k=k) for _, m in loaded]
    header = ["run"]
    for table_header, _ in tables:
        header += [c for c in table_header if c not in header]
    rows = []
    for name, (table_header, table_rows) in zip(names, tables, strict=True):
        for row in table_rows:
            cell = dict(zip(table_header, row, strict=True))
            rows.append([name] + [cell.get(c, "–") for c in header[1:]])
    rules = {headline(m)[0] if rule is None else rule for _, m in loaded}
    markdown = "\n".join([
        "# Comparison of evaluation reports", "",
        f"Test splits' metrics at k = {k}, {', '.join(r.replace('_', '-') for r in sorted(rules))}.", "",
        *markdown_table(header, rows), "",
        *[f"- {name}: {path}" for name, (path, _) in zip(names, loaded, strict=True)],
        *([""] + [f"Note: {note}" for note in notes] if notes else []),
    ]) + "\n"
    target = _compare_path(out)
    with atomic_path(target) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    return Comparison(header=header, rows=rows, markdown=markdown, path=target, notes=notes)


def _metrics_file(given: Path) -> Path:
    for candidate in (given, given / METRICS_FILE, given / "report" / METRICS_FILE):
        if candidate.is_file():
            return candidate
    return given


def _run_name(given: Path) -> str:
    """The run's folder name, also when a report folder or its metrics.json is given."""
    path = given.resolve()
    if path.name == METRICS_FILE:
        path = path.parent
    if path.name == "report" and (path / METRICS_FILE).is_file():
        path = path.parent
    return path.name or str(given)


def _split_notes(names: list[str], metrics: list[dict[str, Any]]) -> list[str]:
    """Runs evaluated on other test splits (another partition file or another number of tracks)."""
    def split_of(m: dict[str, Any]) -> tuple[Any, Any]:
        partitions = m.get("inputs", {}).get("partitions")
        return (str(Path(partitions).resolve()) if partitions else None,
                m.get("splits", {}).get("test", {}).get("tracks"))

    splits = [split_of(m) for m in metrics]
    if len(set(splits)) <= 1:
        return []
    described = ", ".join(f"{name}: {tracks} test tracks ({parts})" for name, (parts, tracks) in
                          zip(names, splits, strict=True))
    return [f"the runs were evaluated on different test splits, so their rows are not directly comparable "
            f"({described})"]


def _compare_path(out: str | Path | None) -> Path:
    if out is None:
        return Path(COMPARE_FILE)
    target = Path(out)
    if target.is_dir() or str(out).endswith(("/", "\\")) or target.suffix == "":
        return ensure_dir(target) / COMPARE_FILE
    ensure_dir(target.parent)
    return target


# ------------------------------------------------------------------------------------------- helpers


def _probe_kind(methods: dict[str, Any], tagset: str) -> str | None:
    for method in methods.values():
        probe = (method.get("probes") or {}).get(tagset)
        if probe and probe.get("kind"):
            return probe["kind"]
    return None


def _number(value: Any) -> str:
    return "–" if value is None else f"{float(value):.3f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, columns padded to line up in plain text too."""
    cells = [header, *rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    line = lambda row: "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"  # noqa: E731
    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *[line(r) for r in rows]]
