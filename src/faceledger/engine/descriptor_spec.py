"""What a descriptor network's vectors are: their model version, dimension and metric.

Every layer that stores, indexes, scores or calibrates descriptors takes
these from the collection's pack (via its model version), never from a
constant: dlib's ResNet gives 128-d vectors compared by Euclidean distance,
an operator's own network may give 192- or 512-d vectors compared by cosine.
"""

from __future__ import annotations

from dataclasses import dataclass

METRICS = ("euclidean", "cosine")


@dataclass(frozen=True)
class DescriptorSpec:
    model_version: str
    dim: int
    metric: str  # one of METRICS

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, not {self.metric!r}")
        if not 1 <= self.dim <= 4096:
            raise ValueError(f"descriptor dimension must be 1..4096, not {self.dim}")
