"""``faceledger eval``: measure accuracy on labelled folders; rebuild calibration tables."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import click
import numpy as np

from ..engine import EngineSettings
from ..engine.calibration import CalibrationTable, fmr_from_similarity, load_table, table_path
from ..engine.calibration.build import build_table
from ..engine.packs import pack_tables, stamp, store_dir, write_table
from ..engine.scoring import COHORT_MIN, Scorer, build_cohort_table, cohort_table_path
from ..errors import InvalidParameterError
from ..evaluation.detection import annotated_recall, stated_counts
from ..evaluation.embedding import describe_files, image_paths, load_cache, save_cache
from ..evaluation.identify import evaluate_identification
from ..evaluation.pairs import evaluate_pairs, plot_roc, read_pairs
from .output import emit, handle_errors
from .serve import data_option, settings_for


@click.group(name="eval")
def eval_group() -> None:
    """Measure accuracy on labelled data (pair lists, identity folders)."""


def _vectors(root: str, rels: list[str], *, mirror: bool, procs: int, cache: str | None,
             progress: bool, settings: EngineSettings | None = None) -> dict[str, np.ndarray | None]:
    """Descriptors of the central face per relative path, from a cache or computed."""
    version = (settings or EngineSettings()).model_version
    if cache and os.path.exists(cache):
        z = load_cache(cache)
        made_by = str(z["model"]) if "model" in z else ""
        if made_by and made_by != version.replace("-mirror", ""):
            raise InvalidParameterError(f"--cache {cache} holds descriptors of {made_by}, not {version}; "
                                        "give another file.")
        key = "mirror" if mirror else "plain"
        have = {str(r): (z[key][i] if z["ok"][i] else None) for i, r in enumerate(z["rel"])}
        missing = [r for r in rels if r not in have]
        if not missing:
            return {r: have[r] for r in rels}
    for r in rels:
        if not os.path.isfile(os.path.join(root, r)):
            raise InvalidParameterError(f"{os.path.join(root, r)} does not exist.")
    items = list(describe_files([os.path.join(root, r) for r in rels], settings=settings, procs=procs,
                                progress=progress))
    if cache:
        save_cache(cache, root, items, model=version)
    return {
        os.path.relpath(i.path, root): (i.mirror if mirror else i.plain) for i in items
    }


def model_options(fn):  # type: ignore[no-untyped-def]
    """--model and --data: which pack describes the faces (default FACELEDGER_MODEL, else the built-in pack)."""
    fn = data_option(fn)
    return click.option("--model", "model", default=None,
                        help="Model pack NAME (or NAME-VERSION) from DATA_DIR/models; default: $FACELEDGER_MODEL, "
                             "else the built-in dlib-resnet128.")(fn)


def pack_settings(model: str | None, data_dir: str | None, no_mirror: bool, **kw: object) -> EngineSettings:
    """EngineSettings for the pack asked for; --no-mirror only where the pack leaves mirroring open."""
    s = settings_for(data_dir)
    settings = EngineSettings(model=s.model if model is None else model, model_store=str(store_dir(s.data_dir)),
                              mirror=not no_mirror, **kw)  # type: ignore[arg-type]
    pack = settings.pack  # a clear error for an unknown pack, before any image is read
    if no_mirror and pack.manifest is not None:
        raise InvalidParameterError(f"--no-mirror: pack {pack.model_version} fixes mirror averaging in its "
                                    "manifest (networks[].mirror).")
    return settings


def pack_mirror(settings: EngineSettings) -> bool:
    pack = settings.pack
    return settings.mirror if pack.manifest is None else pack.manifest.descriptor.mirror


def scoring_for(settings: EngineSettings, normalization: str) -> tuple[CalibrationTable, Scorer]:
    """The raw table and the scorer for the pack (ModelNotCalibratedError for a pack without its table)."""
    pack = settings.pack
    if pack.builtin:
        table = load_table(settings.model_version)
        return table, Scorer.load(table, normalization)
    raw, cohort = pack_tables(pack, cohort=normalization == "cohort")
    return raw, Scorer.load(raw, normalization, cohort=cohort)


common = [
    click.option("--procs", type=int, default=os.cpu_count() or 1, show_default=True),
    click.option("--no-mirror", is_flag=True, help="One network pass per face (no mirror averaging)."),
    click.option("--cache", type=click.Path(dir_okay=False), default=None,
                 help="An .npz of descriptors to reuse (written if absent)."),
    click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
]


normalization_option = click.option(
    "--normalization", type=click.Choice(["cohort", "off"]), default="cohort", show_default=True,
    help="Score as FACELEDGER_SCORE_NORMALIZATION does (cohort: the evaluated set is its own cohort).")


def frontend_options(fn):  # type: ignore[no-untyped-def]
    """--detector and --landmarker: which front end finds and aligns the faces (docs/engine.md)."""
    fn = click.option("--landmarker", type=click.Choice(["dlib5", "facemesh"]), default="dlib5",
                      show_default=True, help="facemesh also aligns the chips: its own model version.")(fn)
    return click.option("--detector", type=click.Choice(["hog", "cnn", "blazeface"]), default="hog",
                        show_default=True)(fn)


def with_common(fn):  # type: ignore[no-untyped-def]
    for opt in reversed(common):
        fn = opt(fn)
    return fn


@eval_group.command()
@click.option("--root", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--pairs", "pairs_file", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write ROC and DET plots (PNG).")
@click.option("--limit", type=click.IntRange(min=10), default=None,
              help="Only N pairs (10 or more: 10-fold accuracy), evenly spaced, keeping the same/different mix.")
@normalization_option
@frontend_options
@model_options
@with_common
@handle_errors
def pairs(root: str, pairs_file: str, plot: str | None, limit: int | None, normalization: str, detector: str,
          landmarker: str, model: str | None, data_dir: str | None, procs: int, no_mirror: bool, cache: str | None,
          as_json: bool, quiet: bool) -> None:
    """Verification on a pair list: 10-fold accuracy, TAR at FMR 1e-3/1e-4, EER.

    TAR is scored as the service scores: with normalisation on, the images of
    the pair list are one collection, its own cohort.
    """
    listed = read_pairs(pairs_file)
    rows = evenly_spaced(listed, limit)
    rels = sorted({p for a, b, _ in rows for p in (a, b)})
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(f"eval pairs: {msg}", err=True))
    say(f"{len(rows)} of {len(listed)} pairs, {len(rels)} images; describing faces "
        f"({procs} process(es){', cache ' + cache if cache else ''})")
    settings = pack_settings(model, data_dir, no_mirror, detector=detector, landmarker=landmarker)
    table, scorer = scoring_for(settings, normalization)  # refused before describing for an uncalibrated pack
    vectors = _vectors(root, rels, mirror=pack_mirror(settings), procs=procs, cache=cache, progress=not quiet,
                       settings=settings)
    version = settings.model_version
    say(f"scoring {len(rows)} pairs (normalization {normalization})")
    out = {"model_version": version, "detector": detector, "pairs_listed": len(listed),
           **evaluate_pairs(rows, vectors, table, scorer)}
    if plot:
        say(f"plotting to {plot}")
        plot_roc(rows, vectors, plot)
        out["plot"] = plot
    emit(out, as_json, pairs_text)


def evenly_spaced(rows: list, limit: int | None) -> list:
    """``limit`` rows spread evenly through ``rows``, same and different pairs in the list's proportion.

    Spacing alone does not keep the mix: a list in blocks (LFW's: same, then
    different) gave 16 same and 4 different of 20 where the list is 2:1.
    """
    if limit is None or limit >= len(rows):
        return rows
    same = [i for i, r in enumerate(rows) if r[2]]
    different = [i for i, r in enumerate(rows) if not r[2]]
    n_same = round(limit * len(same) / len(rows))
    if same and different:  # both kinds, however small the limit
        n_same = min(max(n_same, 1), limit - 1)

    def spread(idx: list[int], n: int) -> list[int]:
        return [idx[i] for i in np.floor(np.arange(n) * (len(idx) / n)).astype(int)] if n else []
    return [rows[i] for i in sorted(spread(same, n_same) + spread(different, limit - n_same))]


def pairs_text(o: dict) -> str:
    """The eval pairs summary as a few lines of text (--json has every figure)."""
    def pct(key: str) -> str:
        return "-" if o.get(key) is None else f"{100 * o[key]:.2f}%"
    lines = [f"{o['model_version']}: {o['pairs']} pairs ({o['same']} same, {o['different']} different"
             f"{', of ' + str(o['pairs_listed']) + ' listed' if o.get('pairs_listed', o['pairs']) != o['pairs'] else ''}),"
             f" {o['pairs_without_face']} without a face",
             f"  10-fold accuracy {pct('accuracy_10fold')} (+-{pct('accuracy_10fold_std')}), "
             f"EER {pct('eer')} at distance {o['eer_distance']}",
             f"  TAR at FMR 1e-3 {pct('tar_at_fmr_0.001')}, at 1e-4 {pct('tar_at_fmr_0.0001')}"
             f" (scoring {o.get('score_normalization', 'raw')}, calibration {o.get('calibration', '-')})"]
    if o.get("plot"):
        lines.append(f"  plots: {o['plot']}")
    return "\n".join(lines)


@eval_group.command()
@click.option("--root", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--limit", type=int, default=None, help="Only the first N images (sorted).")
@click.option("--strangers", type=int, default=None,
              help="Keep only N single-image identities as non-mated probes; enrol the rest as distractors.")
@normalization_option
@frontend_options
@model_options
@with_common
@handle_errors
def identify(root: str, limit: int | None, strangers: int | None, normalization: str, detector: str,
             landmarker: str, model: str | None, data_dir: str | None, procs: int, no_mirror: bool,
             cache: str | None, as_json: bool, quiet: bool) -> None:
    """Open-set identification: rank-1, FNIR at FPIR 0.01/0.001, strangers at the default.

    The figures at the default are scored as the service scores a search of
    the gallery (with normalisation on, the gallery is its own cohort).
    """
    rels = [os.path.relpath(p, root) for p in image_paths(root, limit)]
    settings = pack_settings(model, data_dir, no_mirror, detector=detector, landmarker=landmarker)
    table, scorer = scoring_for(settings, normalization)
    vectors = _vectors(root, rels, mirror=pack_mirror(settings), procs=procs, cache=cache, progress=not quiet,
                       settings=settings)
    version = settings.model_version
    out = {"model_version": version, "detector": detector, **evaluate_identification(
        root, vectors, table, strangers=strangers, scorer=scorer if normalization == "cohort" else None)}
    emit(out, as_json)


@eval_group.command()
@click.option("--root", required=True, type=click.Path(file_okay=False, exists=True),
              help="Identity folders (tune only on lfw_dev).")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None,
              help="Where to write the built-in pack's tables (default: the package's calibration folder); "
                   "an installed pack's always go into its folder in the model store.")
@click.option("--pairs", "pairs_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Calibrate on the images this pair list names (default: every image under ROOT).")
@click.option("--limit", type=click.IntRange(min=10), default=None,
              help="With --pairs: only N pairs, evenly spaced (a quick table for tests; without --pairs: the "
                   "first N images).")
@frontend_options
@model_options
@with_common
@handle_errors
def calibrate(root: str, out_dir: str | None, pairs_file: str | None, limit: int | None, detector: str,
              landmarker: str, model: str | None, data_dir: str | None, procs: int, no_mirror: bool,
              cache: str | None, as_json: bool, quiet: bool) -> None:
    """Build the calibration and cohort tables from every pair in ROOT (or the images of --pairs).

    The built-in pack gets both its plain and mirror tables; an installed pack
    (--model) gets its one pipeline's tables, stamped with its model version and
    the SHA-256 of its descriptor file, in DATA_DIR/models/NAME-VERSION/calibration.
    """
    if pairs_file:
        rows = evenly_spaced(read_pairs(pairs_file), limit)
        rels = sorted({p for a, b, _ in rows for p in (a, b)})
    else:
        rels = [os.path.relpath(p, root) for p in image_paths(root, limit)]
    settings = pack_settings(model, data_dir, no_mirror, detector=detector, landmarker=landmarker)
    pack = settings.pack
    summary = {}
    for mirror in ((True, False) if pack.builtin else (pack_mirror(settings),)):
        vectors = _vectors(root, rels, mirror=mirror, procs=procs, cache=cache, progress=not quiet,
                           settings=settings)
        keep = [r for r in rels if vectors.get(r) is not None]
        desc = np.array([vectors[r] for r in keep])
        labels = np.array([r.split(os.sep)[0] for r in keep])
        version = replace(settings, mirror=mirror).model_version
        meta = {"data": os.path.basename(os.path.normpath(root)), "images": len(rels),
                "images_with_face": len(keep), "identities": int(len(set(labels))), "table_version": 1,
                **({"pairs": os.path.basename(pairs_file), "pairs_limit": limit} if pairs_file else {}),
                **({} if pack.builtin else {**stamp(pack), "metric": pack.spec().metric,
                                            "distance": "1 - cosine similarity"
                                            if pack.spec().metric == "cosine" else "euclidean"})}
        metric = pack.spec().metric  # the distance the index and the scorer will measure for this pack
        table = build_table(desc, labels, version, meta=meta, metric=metric)
        if pack.builtin:
            path = os.path.join(out_dir, f"{version}.json") if out_dir else str(table_path(version))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                json.dump(table.to_json(), fh, separators=(",", ":"))
        else:
            path = str(write_table(pack, table))
        summary[version] = {"path": path, **table.meta,
                            "distance_at_fmr_1e-4": round(table.distance_for_fmr(1e-4), 4),
                            "fmr_at_distance_0.6": float(table.fmr(0.6))}
        # the cohort S-norm table (docs/fairness.md), built on the same descriptors
        if len(keep) < COHORT_MIN:
            click.echo(f"{version}: no cohort table from {len(keep)} faces (it needs {COHORT_MIN}); "
                       "score with FACELEDGER_SCORE_NORMALIZATION=off.", err=True)
            continue
        cohort = build_cohort_table(desc, labels, version, meta={
            "data": os.path.basename(os.path.normpath(root)), "images_with_face": len(keep), "table_version": 1,
            **({} if pack.builtin else stamp(pack))}, metric=metric)
        if pack.builtin:
            cpath = os.path.join(out_dir, f"{version}-cohort.json") if out_dir else str(cohort_table_path(version))
            with open(cpath, "w") as fh:
                json.dump(cohort.to_json(), fh, separators=(",", ":"))
        else:
            cpath = str(write_table(pack, cohort, cohort=True))
        summary[f"{version}-cohort"] = {"path": cpath, **cohort.meta}
    emit(summary, as_json)


@eval_group.command()
@click.option("--annotations", type=click.Path(dir_okay=False, exists=True), default=None,
              help="JSON list of {image, boxes_xywh} (the dlib_pascal_faces format).")
@click.option("--counts", type=click.Path(dir_okay=False, exists=True), default=None,
              help="CSV with file and face_count_stated_by_source columns (the group_photos format).")
@click.option("--root", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder the image paths are relative to (default: the file's folder).")
@click.option("--detector", type=click.Choice(["hog", "cnn", "blazeface"]), default="hog", show_default=True)
@click.option("--min-face", type=float, default=40.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def detection(annotations: str | None, counts: str | None, root: str | None, detector: str, min_face: float,
              as_json: bool) -> None:
    """Detection recall on hand-boxed faces, or faces found against stated counts."""
    from ..engine import Engine

    if not annotations and not counts:
        raise InvalidParameterError("Give --annotations or --counts.")
    engine = Engine(EngineSettings(detector=detector, min_face_px=min_face))
    out: dict = {"detector": detector}
    if annotations:
        out["annotated"] = annotated_recall(engine, annotations, root or os.path.dirname(annotations))
    if counts:
        out["counted"] = stated_counts(engine, counts, root or os.path.dirname(counts))
    emit(out, as_json)


@eval_group.command()
@click.option("--root", required=True, type=click.Path(file_okay=False, exists=True),
              help="Folder the label file's paths are relative to.")
@click.option("--labels", "labels_file", required=True, type=click.Path(dir_okay=False, exists=True),
              help="CSV with a path column, group columns and optionally an identity column.")
@click.option("--group-by", default="race,gender", show_default=True, help="Comma-separated group columns.")
@click.option("--path-column", default="path", show_default=True)
@click.option("--identity-column", default=None, help="Without one, every two images are different people.")
@click.option("--min-age", type=float, default=None, help="Keep rows with age >= this (column --age-column).")
@click.option("--age-column", default="age", show_default=True)
@normalization_option
@click.option("--keep-duplicates", is_flag=True,
              help="Count pairs of the same photograph (pixel correlation >= 0.98) as impostor pairs too.")
@click.option("--gallery", type=int, default=1000, show_default=True,
              help="Gallery size for the 1:N default threshold.")
@click.option("--cohort-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Normalise against this .npy of descriptors (as FACELEDGER_COHORT_FILE) instead of the set itself.")
@click.option("--half", type=click.Choice(["first", "second"]), default=None,
              help="Evaluate only the labelled rows at even (first) or odd (second) positions.")
@model_options
@with_common
@handle_errors
def subgroups(root: str, labels_file: str, group_by: str, path_column: str, identity_column: str | None,
              min_age: float | None, age_column: str, gallery: int, cohort_file: str | None, half: str | None,
              normalization: str, keep_duplicates: bool, model: str | None, data_dir: str | None,
              procs: int, no_mirror: bool, cache: str | None, as_json: bool, quiet: bool) -> None:
    """FMR (and FNMR with identities) per subgroup at the deployed thresholds, with 95% intervals.

    Pairs are scored as the service scores them: the labelled images form one
    collection, which is its own cohort when normalisation is on (or the
    --cohort-file, as an operator-supplied cohort is).
    """
    from ..engine.calibration import compare_threshold, search_threshold
    from ..engine.scoring import Cohort
    from ..evaluation.deployed import collection_stats, file_stats
    from ..evaluation.subgroups import (
        group_rates,
        ratios,
        read_labels,
        same_photographs,
    )

    rows = read_labels(labels_file, [c.strip() for c in group_by.split(",") if c.strip()], path_column=path_column,
                       identity_column=identity_column, min_age=min_age, age_column=age_column)
    rows = split_half(rows, half)
    settings = pack_settings(model, data_dir, no_mirror)
    table, scorer = scoring_for(settings, normalization)
    vectors = _vectors(root, [r["path"] for r in rows], mirror=pack_mirror(settings), procs=procs, cache=cache,
                       progress=not quiet, settings=settings)
    kept = [r for r in rows if vectors.get(r["path"]) is not None]
    version = settings.model_version
    sims = {"compare_1to1": compare_threshold(1e-4), f"search_1toN_gallery_{gallery}": search_threshold(gallery)}
    mat = np.array([vectors[r["path"]] for r in kept])
    if cohort_file and scorer.enabled and len(mat):
        try:
            cohort = Cohort.from_file(cohort_file, mat.shape[1], scorer.metric)
        except ValueError as exc:
            raise InvalidParameterError(f"--cohort-file: {exc}.") from exc
        stats = file_stats(scorer, mat, cohort)
    else:
        stats = collection_stats(scorer, mat) if scorer.enabled and len(mat) else None
    same = None if keep_duplicates else same_photographs([os.path.join(root, r["path"]) for r in kept])
    rates = group_rates(mat, [r["group"] for r in kept], [r["identity"] for r in kept], sims, scorer, stats, same)
    out = {"model_version": version, "images": len(rows), "images_with_face": len(kept),
           "half": half, "cohort": os.path.basename(cohort_file) if cohort_file else "the evaluated set",
           "score_normalization": scorer.version if stats is not None else
           ("off" if not scorer.enabled else "inactive"),
           "same_photograph_pairs_excluded": sum(e["same_photograph_pairs_excluded"] for e in rates.values()),
           "thresholds": {k: {"similarity": round(v, 3), "promised_fmr": fmr_from_similarity(v)}
                          for k, v in sims.items()},
           "groups": rates, "ratios": ratios(rates, sims)}

    def text(o: dict) -> str:
        lines = [f"scoring: {o['score_normalization']}; same-photograph pairs left out: "
                 f"{o['same_photograph_pairs_excluded']}"]
        for name, t in o["thresholds"].items():
            lines.append(f"{name}: similarity {t['similarity']} (promised FMR {t['promised_fmr']:.1e})")
            for g, e in o["groups"].items():
                r = e[name]
                lines.append(f"  {g:<24} FMR {r['fmr']:.2e} [{r['fmr_ci95'][0]:.1e}, {r['fmr_ci95'][1]:.1e}] "
                             f"({r['false_matches']}/{e['impostor_pairs']})")
            if name in o["ratios"]:
                rr = o["ratios"][name]
                lines.append(f"  worst/best: {rr['worst_best_ratio']:.1f} ({rr['worst_group']} vs {rr['best_group']}; "
                             f"at least {rr['worst_best_ratio_lower_bound']:.1f} by the 95% intervals)")
        return "\n".join(lines)

    emit(out, as_json, text)


def split_half(rows: list, half: str | None) -> list:
    """The rows at even (``first``) or odd (``second``) positions; all of them for None."""
    if half is None:
        return rows
    return rows[0 if half == "first" else 1::2]


@eval_group.command("cohort-file")
@click.option("--root", required=True, type=click.Path(file_okay=False, exists=True),
              help="Folder of images (searched recursively), or the one a --labels file's paths are relative to.")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False),
              help="The .npy to write: one descriptor per image with a face, shape (m, dim).")
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="CSV with a path column: describe these images instead of every image under --root.")
@click.option("--min-age", type=float, default=None, help="With --labels: rows with age >= this.")
@click.option("--half", type=click.Choice(["first", "second"]), default=None,
              help="With --labels: the rows at even (first) or odd (second) positions, as `eval subgroups --half`.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="At most this many images, evenly spaced (the service uses at most 2,000 cohort rows).")
@with_common
@handle_errors
def cohort_file(root: str, out_file: str, labels_file: str | None, min_age: float | None, half: str | None,
                limit: int | None, procs: int, no_mirror: bool, cache: str | None, as_json: bool,
                quiet: bool) -> None:
    """Write a normalisation cohort file (FACELEDGER_COHORT_FILE) from a folder of images you may use."""
    from ..engine.scoring import sample_rows
    from ..evaluation.subgroups import read_labels

    if labels_file:
        rels = [r["path"] for r in split_half(read_labels(labels_file, [], min_age=min_age), half)]
    else:
        rels = [os.path.relpath(p, root) for p in image_paths(root)]
    if limit:
        rels = [rels[int(i)] for i in sample_rows(len(rels), limit)]
    vectors = _vectors(root, rels, mirror=not no_mirror, procs=procs, cache=cache, progress=not quiet)
    mat = np.array([v for v in (vectors[r] for r in rels) if v is not None], dtype=np.float32)
    if len(mat) < COHORT_MIN:
        raise InvalidParameterError(f"Only {len(mat)} images with a face; a cohort needs at least {COHORT_MIN}.")
    np.save(out_file, mat)
    emit({"out": out_file, "images": len(rels), "descriptors": int(len(mat)), "dim": int(mat.shape[1]),
          "model_version": EngineSettings(mirror=not no_mirror).model_version}, as_json)
