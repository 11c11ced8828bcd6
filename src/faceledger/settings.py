"""Typed settings, read once from the environment (``FACELEDGER_*``) and passed in.

Nothing imports a settings singleton: ``Settings.from_env()`` is called by the
entry point (CLI, server) and the object is handed down. Tests build their own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import InvalidParameterError


def default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "faceledger"


@dataclass(frozen=True)
class Settings:
    """Every setting the service reads. Documented in docs/settings.md."""

    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8765
    region: str = "us-east-1"
    account_id: str = "000000000000"
    workers: int = 0  # engine worker processes; 0 = one per core
    max_queue: int = 16  # requests waiting for a worker before ThrottlingException
    max_body_bytes: int = 7_500_000  # a 5 MB image, base64-encoded, plus JSON
    clock_skew_s: int = 900
    detector: str = "hog"
    landmarks68: bool = False
    landmarker: str = "dlib5"  # dlib5 | facemesh (MediaPipe; its own model version and calibration)
    min_face_px: float = 40.0
    compare_fmr: float = 1e-4  # CompareFaces default/floor: the Similarity of this FMR
    max_expected_false: float = 0.001  # 1:N default/floor: N x FMR at or below this
    score_normalization: str = "cohort"  # "cohort": never-looser cohort S-norm (docs/fairness.md); "off": raw only
    buckets: str = ""  # "name=/dir,other=/dir2": S3 buckets mapped to local folders
    policy_file: str = ""  # default: <data_dir>/policy.toml when it exists
    retention_sweep_s: int = 3600  # how often the service sweeps expired enrolments
    checkpoint_every: int = 1000  # sign a ledger checkpoint after this many records
    ledger_retention_days: int = 183  # floor: no ledger record younger than this may be archived away

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"FACELEDGER_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _parse(f.name, raw, f.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(str(values["data_dir"])).expanduser()
        return cls(**values)  # type: ignore[arg-type]

    def policy_path(self) -> Path | None:
        if self.policy_file:
            return Path(self.policy_file).expanduser()
        default = Path(self.data_dir) / "policy.toml"
        return default if default.is_file() else None

    def bucket_map(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for item in filter(None, (s.strip() for s in self.buckets.split(","))):
            name, _, path = item.partition("=")
            if not name or not path:
                raise InvalidParameterError(f"FACELEDGER_BUCKETS entry {item!r} must be name=/path.")
            out[name] = Path(path).expanduser()
        default = self.data_dir / "buckets"
        if default.is_dir():
            for p in default.iterdir():
                if p.is_dir():
                    out.setdefault(p.name, p)
        return out


def _parse(name: str, raw: str, kind: object) -> object:
    kind = str(kind)
    try:
        if "bool" in kind:
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if "int" in kind:
            return int(raw)
        if "float" in kind:
            return float(raw)
    except ValueError as exc:
        raise InvalidParameterError(f"FACELEDGER_{name.upper()}={raw!r} is not a valid {kind}.") from exc
    return raw
