"""How a raw descriptor distance becomes a Similarity: the calibration table, optionally tightened by cohort S-norm.

The descriptor space is not equally crowded everywhere: with this model,
faces of some groups (measured: Asian and Indian women) sit much closer to
each other than faces of others, so one distance threshold lets through far
more strangers there (docs/fairness.md). Cohort normalisation measures how
crowded each face's neighbourhood is among the deployment's *own* enrolled
faces (the cohort) and asks for more evidence where it is crowded:

* a face's neighbourhood is the mean ``mu`` and standard deviation ``sigma``
  of its ``K`` nearest cohort distances (:func:`neighbourhood_stats`);
* the normalised distance of a pair is the symmetric S-norm
  ``u = -((mu_a - d)/sigma_a + (mu_b - d)/sigma_b) / 2``, calibrated to a
  false match rate by its own table, built on lfw_dev exactly as the raw one
  is (``faceledger eval calibrate``);
* **never looser than raw**: the FMR of a comparison is the larger of the raw
  and the normalised estimate, so the Similarity reported is the smaller one.
  Normalisation can only raise the evidence a match needs, never lower it.

No demographic label is used or inferred: the only inputs are descriptors.
The cohort is a deterministic sample of at most ``COHORT_MAX`` enrolled faces
(the collection searched for 1:N; all collections for CompareFaces). With
fewer than ``COHORT_MIN`` enrolled faces the neighbourhoods are not
meaningful and the raw calibration applies alone; responses and ledger
records say which happened.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .calibration import CalibrationTable, load_table, similarity_from_fmr, table_path
from .normalization import CohortStats, neighbourhood_stats, snorm_distance

K = 200
COHORT_MAX = 2000
COHORT_MIN = 500
METHOD = f"snorm-k{K}-cohort{COHORT_MAX}-never-looser"
MODES = ("cohort", "off")


def sample_rows(n: int, size: int = COHORT_MAX) -> np.ndarray:
    """Evenly spaced row numbers: all ``n`` rows when ``n <= size``, else ``size`` of them."""
    if n <= size:
        return np.arange(n)
    return np.floor(np.arange(size) * (n / size)).astype(np.int64)


@dataclass(frozen=True)
class Cohort:
    """A sample of enrolled faces: vectors and their face ids (so a face is never its own neighbour)."""

    vectors: np.ndarray  # (m, dim) float32, the pack's descriptors
    ids: np.ndarray  # (m,) face ids
    metric: str = "euclidean"  # the pack's (engine/distance.py)

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def rows(self) -> dict:
        return {face_id: i for i, face_id in enumerate(self.ids.tolist())}

    @functools.cached_property
    def _f64(self) -> tuple[np.ndarray, np.ndarray]:
        m = self.vectors.astype(np.float64)
        return m, (m * m).sum(1)

    @classmethod
    def from_file(cls, path: str | Path, dim: int, metric: str) -> Cohort:
        """An operator-supplied cohort: a .npy of (m, dim) finite float descriptors of the pack.

        Its rows get ids no enrolled face has (``cohort-file:<row>``), so no face is left out of
        its neighbourhood on their account. ValueError says what is wrong with the file.
        """
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read cohort file {path}: {exc}") from exc
        if arr.ndim != 2 or arr.shape[1] != dim or arr.dtype.kind != "f":
            raise ValueError(f"cohort file {path} holds a {arr.dtype} array of shape {arr.shape}; "
                             f"it must be float descriptors of shape (m, {dim}) of this pack")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"cohort file {path} has NaN or infinite values")
        if len(arr) < COHORT_MIN:
            raise ValueError(f"cohort file {path} has {len(arr)} descriptors; at least {COHORT_MIN} are needed")
        rows = sample_rows(len(arr))
        ids = np.array([f"cohort-file:{i}" for i in rows], dtype=object)
        return cls(np.ascontiguousarray(arr[rows], dtype=np.float32), ids, metric)

    def stats(self, vectors: np.ndarray, own_ids: list | None = None) -> CohortStats:
        """Neighbourhoods of ``vectors``; ``own_ids[i]`` (if given) is left out of row i's neighbours."""
        rows = None if own_ids is None else np.array([self.rows.get(f, -1) for f in own_ids], dtype=np.int64)
        mat, sq = self._f64
        return neighbourhood_stats(vectors, mat, K, exclude_rows=rows, cohort_sq=sq, metric=self.metric)


def cohort_table_path(model_version: str) -> Path:
    return table_path(f"{model_version}-cohort")


def load_cohort_table(model_version: str) -> CalibrationTable:
    return load_table(f"{model_version}-cohort", ", or set FACELEDGER_SCORE_NORMALIZATION=off")


@dataclass(frozen=True)
class Scorer:
    """Raw calibration plus, when ``normalised`` is set, the never-looser cohort S-norm."""

    raw: CalibrationTable
    normalised: CalibrationTable | None = None

    @classmethod
    def load(cls, raw: CalibrationTable, mode: str, cohort: CalibrationTable | None = None) -> Scorer:
        """``cohort``: the S-norm table when the caller has it (a pack's); else the package's for the version."""
        if mode not in MODES:
            raise ValueError(f"score normalisation must be one of {MODES}, not {mode!r}")
        if mode == "off":
            return cls(raw, None)
        cohort = (cohort or load_cohort_table(raw.model_version)).check_for(raw.model_version, raw.dim, raw.metric)
        return cls(raw, cohort)

    @property
    def metric(self) -> str:
        """The metric every distance this scorer reads is in (its tables')."""
        return self.raw.metric

    @property
    def enabled(self) -> bool:
        return self.normalised is not None

    @property
    def version(self) -> str:
        """What the ledger and the transparency report record: ``off`` or method and table version."""
        if self.normalised is None:
            return "off"
        return f"{METHOD}/{self.normalised.version}"

    def active(self, cohort: Cohort | None) -> bool:
        return self.normalised is not None and cohort is not None and len(cohort) >= COHORT_MIN

    def fmr(self, d: np.ndarray | float, a: CohortStats | None = None, b: CohortStats | None = None) -> np.ndarray:
        """Estimated FMR of raw distance(s) ``d``; with both sides' neighbourhoods, the larger of raw and S-norm."""
        raw = self.raw.fmr(d)
        if self.normalised is None or a is None or b is None:
            return raw
        return np.maximum(raw, self.normalised.fmr(snorm_distance(d, a, b)))

    def similarity(self, d: np.ndarray | float, a: CohortStats | None = None,
                   b: CohortStats | None = None) -> np.ndarray:
        return similarity_from_fmr(self.fmr(d, a, b))

    def report(self, cohort: Cohort | None) -> dict:
        """The response/ledger fields that say how scores were made."""
        if self.normalised is None:
            return {"ScoreNormalization": "off"}
        if not self.active(cohort):
            return {"ScoreNormalization": "inactive", "CohortSize": 0 if cohort is None else len(cohort),
                    "CohortMinimum": COHORT_MIN}
        assert cohort is not None
        return {"ScoreNormalization": self.version, "CohortSize": len(cohort)}


def build_cohort_table(desc: np.ndarray, labels: np.ndarray, model_version: str,
                       meta: dict | None = None, metric: str = "euclidean") -> CalibrationTable:
    """Calibrate the S-norm distance on every pair of a labelled set (lfw_dev), the set being its own cohort.

    The cohort follows the run-time rule exactly (:func:`sample_rows` of the
    set, ``K`` neighbours, a face left out of its own neighbourhood and nothing
    else): at run time a person's other enrolled faces are in the cohort too,
    so the table must see them there as well.
    """
    from .normalization import build_snorm_table

    rows = sample_rows(len(desc))
    own = np.arange(len(desc))
    stats = neighbourhood_stats(desc, desc[rows].astype(np.float32), K, exclude=own, cohort_labels=own[rows],
                                metric=metric)
    return build_snorm_table(desc, labels, stats, f"{model_version}-cohort", meta={
        **(meta or {}), "method": METHOD, "k": K, "cohort_max": COHORT_MAX, "cohort_size": int(len(rows))},
        metric=metric)
