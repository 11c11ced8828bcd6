"""Calibrated scores: raw descriptor distance -> false match rate -> Similarity.

A calibration table, measured on labelled data (lfw_dev: every genuine pair
within an identity, every impostor pair across identities), gives FMR(d): the
share of impostor pairs at distance <= d. Similarity is defined from FMR on a
log scale so that it means the same thing everywhere:

    Similarity = clip(-(100 / 7) * log10(FMR), 0, 100)

so Similarity 80 <-> FMR 10^-5.6 (2.5e-6), 99 <-> 10^-6.93, 100 <-> FMR <= 1e-7,
and FMR 1e-4 <-> Similarity 57.1. Beyond the measured range (too few impostor
pairs to count) FMR is extrapolated from a straight-line fit of log10 FMR on
distance over the measured tail; the table marks those rows. Similarity is
monotone (non-increasing) in distance by construction.

Tables are JSON files in this folder named after the model version they
belong to; ``scripts/build_calibration.py`` / ``faceledger eval calibrate``
rebuild them. A table also says which descriptors it was measured on: their
dimension and metric (``dim``, ``metric``; absent in a file means dlib's
128-d Euclidean ones, so the built-in tables are unchanged), and
:meth:`CalibrationTable.check_for` refuses a table used for another pack.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

from ...errors import ModelFileError

SIMILARITY_PER_DECADE = 100.0 / 7.0
FMR_FLOOR = 1e-7  # Similarity 100


def similarity_from_fmr(fmr: float | np.ndarray) -> np.ndarray:
    f = np.clip(np.asarray(fmr, dtype=np.float64), FMR_FLOOR, 1.0)
    return np.clip(-SIMILARITY_PER_DECADE * np.log10(f), 0.0, 100.0)


def fmr_from_similarity(similarity: float) -> float:
    s = min(100.0, max(0.0, float(similarity)))
    return float(10.0 ** (-s / SIMILARITY_PER_DECADE))


@dataclass(frozen=True)
class CalibrationTable:
    model_version: str
    distances: np.ndarray  # ascending grid
    log10_fmr: np.ndarray  # non-decreasing, same length
    fnmr: np.ndarray  # share of genuine pairs with distance > d
    measured_upto_index: int  # rows below this index are extrapolated
    meta: dict
    dim: int = 128  # the descriptors it was measured on (DescriptorSpec.dim)
    metric: str = "euclidean"  # their metric (DescriptorSpec.metric); distances are in it

    def for_descriptors(self, dim: int, metric: str) -> CalibrationTable:
        """This table, saying it was measured on ``dim``-d descriptors compared by ``metric``."""
        return replace(self, dim=int(dim), metric=metric)

    def check_for(self, model_version: str, dim: int, metric: str) -> CalibrationTable:
        """This table if it was measured for that pack's descriptors; ModelFileError otherwise.

        The cohort table of a pack is named ``<model_version>-cohort``; either name passes.
        """
        base = self.model_version.removesuffix("-cohort")
        if base != model_version or (self.dim, self.metric) != (int(dim), metric):
            raise ModelFileError(
                f"Calibration table {self.model_version} was measured on {base} descriptors "
                f"({self.dim}-d, {self.metric}); it cannot score {model_version} ({dim}-d, {metric}). "
                f"Build one for {model_version} with `faceledger eval calibrate`.")
        return self

    @property
    def version(self) -> str:
        return f"{self.model_version}/{self.meta.get('table_version', 1)}"

    @property
    def smallest_measured_fmr(self) -> float:
        """The lowest FMR counted from impostor pairs; estimates below it are extrapolated."""
        measured = self.meta.get("smallest_measured_fmr")
        if measured is not None:
            return float(measured)
        return float(10.0 ** self.log10_fmr[min(self.measured_upto_index, len(self.log10_fmr) - 1)])

    def fmr(self, distance: float | np.ndarray) -> np.ndarray:
        lf = np.interp(np.asarray(distance, dtype=np.float64), self.distances, self.log10_fmr)
        return np.power(10.0, lf)

    def similarity(self, distance: float | np.ndarray) -> np.ndarray:
        return similarity_from_fmr(self.fmr(distance))

    def distance_for_fmr(self, fmr: float) -> float:
        """The largest distance whose FMR is at most ``fmr``."""
        target = math.log10(max(fmr, 1e-300))
        ok = np.nonzero(self.log10_fmr <= target)[0]
        if len(ok) == 0:
            return float(self.distances[0])
        i = int(ok[-1])
        if i + 1 < len(self.distances) and self.log10_fmr[i + 1] > self.log10_fmr[i]:
            # interpolate inside the step so thresholds are not grid-quantised
            frac = (target - self.log10_fmr[i]) / (self.log10_fmr[i + 1] - self.log10_fmr[i])
            frac = min(max(frac, 0.0), 1.0)
            return float(self.distances[i] + frac * (self.distances[i + 1] - self.distances[i]))
        return float(self.distances[i])

    def distance_for_similarity(self, similarity: float) -> float:
        return self.distance_for_fmr(fmr_from_similarity(similarity))

    def to_json(self) -> dict:
        return {
            "model_version": self.model_version,
            "similarity": "clip(-(100/7)*log10(FMR), 0, 100)",
            "distances": [round(float(x), 5) for x in self.distances],
            "log10_fmr": [round(float(x), 5) for x in self.log10_fmr],
            "fnmr": [round(float(x), 6) for x in self.fnmr],
            "measured_upto_index": self.measured_upto_index,
            "meta": self.meta,
            # written only when not the built-in descriptors', so the built-in tables stay byte-identical
            **({"dim": self.dim, "metric": self.metric} if (self.dim, self.metric) != (128, "euclidean") else {}),
        }

    @classmethod
    def from_json(cls, data: dict) -> CalibrationTable:
        return cls(
            model_version=data["model_version"],
            distances=np.asarray(data["distances"], dtype=np.float64),
            log10_fmr=np.asarray(data["log10_fmr"], dtype=np.float64),
            fnmr=np.asarray(data["fnmr"], dtype=np.float64),
            measured_upto_index=int(data["measured_upto_index"]),
            meta=dict(data.get("meta", {})),
            dim=int(data.get("dim", 128)),
            metric=str(data.get("metric", "euclidean")),
        )


def table_path(model_version: str) -> Path:
    return Path(str(resources.files(__package__) / f"{model_version}.json"))


def load_table(model_version: str, missing: str = "") -> CalibrationTable:
    """The table named ``model_version`` (``<version>`` or ``<version>-cohort``); ``missing`` adds to the error."""
    path = table_path(model_version)
    if not path.is_file():
        raise ModelFileError(
            f"No calibration table {model_version}; build one with `faceledger eval calibrate`{missing}."
        )
    with open(path) as fh:
        return CalibrationTable.from_json(json.load(fh))


def compare_threshold(fmr: float = 1e-4) -> float:
    """The 1:1 default: the Similarity whose FMR is ``fmr``."""
    return float(similarity_from_fmr(fmr))


def search_threshold(gallery_size: int, max_expected_false: float = 0.001) -> float:
    """The 1:N default: lowest Similarity with gallery_size x FMR <= max_expected_false.

    Tightens as the gallery grows: one more decade of faces costs 100/7 points.
    """
    n = max(1, int(gallery_size))
    return float(similarity_from_fmr(max_expected_false / n))


def expected_false_candidates(gallery_size: int, similarity: float) -> float:
    """About N x FMR(S) strangers are expected above Similarity S in a gallery of N."""
    return float(gallery_size * fmr_from_similarity(similarity))
