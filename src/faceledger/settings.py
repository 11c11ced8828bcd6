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


def default_ledger_key_file() -> Path:
    """Outside the data directory on purpose: whoever holds the data must not hold the signing key."""
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "faceledger" / "ledger_signing.key"


@dataclass(frozen=True)
class Settings:
    """Every setting the service reads. Documented in docs/settings.md."""

    data_dir: Path = field(default_factory=default_data_dir)
    store: str = ""  # sqlite:///PATH (default: <data_dir>/catalog.db) or postgresql://... (docs/scale-out.md)
    host: str = "127.0.0.1"
    port: int = 8765
    region: str = "us-east-1"
    account_id: str = "000000000000"
    workers: int = 0  # engine worker processes per API process; 0 = the cores shared out among the API processes
    processes: int = 1  # API processes `serve` runs on one port (each with its own engine workers)
    max_queue: int = 128  # requests that may wait for an engine slot (api/pool.py)
    admission_wait_s: float = 20.0  # longest expected wait for an engine slot before ThrottlingException
    body_timeout_s: float = 20.0  # a request body must arrive within this
    header_timeout_s: float = 10.0  # a connection must send its request headers within this
    max_connections: int = 1024  # open connections; idle ones are evicted first
    max_connections_per_address: int = 128  # open connections per client IP; idle ones evicted first
    max_buffered_bytes: int = 256_000_000  # request bytes held in memory across all requests
    engine_timeout_s: float = 55.0  # one image's (or video frame's) time in a worker before it is killed
    engine_max_rss_mb: int = 2048  # a worker resident above this after a job is replaced (0: never)
    engine_max_memory_mb: int = 4096  # a worker's address-space cap; a job needing more fails (0: none)
    max_body_bytes: int = 7_500_000  # a 5 MB image, base64-encoded, plus JSON
    clock_skew_s: int = 900
    detector: str = "hog"
    landmarks68: bool = False
    landmarker: str = "dlib5"  # dlib5 | facemesh (MediaPipe; its own model version and calibration)
    model: str = ""  # the model pack for new collections: "" = dlib-resnet128 (built in); else DATA_DIR/models
    min_face_px: float = 40.0
    engine_cpu_budget_s: float = 20.0  # CPU seconds one image may cost the engine; 0 = no budget
    compare_fmr: float = 1e-4  # CompareFaces default/floor: the Similarity of this FMR
    max_expected_false: float = 0.001  # 1:N default/floor: N x FMR at or below this
    score_normalization: str = "cohort"  # "cohort": never-looser cohort S-norm (docs/fairness.md); "off": raw only
    # the default pack's normalisation cohort from a .npy of its descriptors instead of the collection searched
    # (other packs: <data_dir>/cohorts/<model version>.npy); docs/model-packs.md
    cohort_file: str = ""
    buckets: str = ""  # "name=/dir,other=/dir2": S3 buckets mapped to local folders
    policy_file: str = ""  # default: <data_dir>/policy.toml when it exists
    retention_sweep_s: int = 3600  # how often the service sweeps expired enrolments
    checkpoint_every: int = 1000  # sign a ledger checkpoint after this many records
    ledger_key_file: str = ""  # Ed25519 signing key; default ~/.config/faceledger/ledger_signing.key
    startup_check: str = "full"  # catalog integrity check before serving: full | quick | off
    ledger_retention_days: int = 183  # floor: no ledger record younger than this may be archived away
    console_session_idle_s: int = 900  # a console session unused this long ends
    console_session_max_s: int = 28800  # a console session ends this long after sign-in, used or not
    console_signin_failures: int = 5  # failed console sign-ins per key id or address before a lock-out
    console_signin_window_s: int = 300  # the window those failures are counted in, and the lock-out's length
    # vector search in the PostgreSQL store (store/pg_vectors.py, docs/scale-out.md); unused with SQLite
    pg_ann_min_faces: int = 200_000  # a collection this large is searched by its HNSW index (0: always exact)
    pg_ef_search: int = 200  # HNSW candidates per search (at least k, at most 1000): recall against speed

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

    def ledger_key_path(self) -> Path:
        return Path(self.ledger_key_file).expanduser() if self.ledger_key_file else default_ledger_key_file()

    def bucket_map(self) -> BucketMap:
        """Buckets named in FACELEDGER_BUCKETS, and every folder under ``<data_dir>/buckets``, when asked."""
        out: dict[str, Path] = {}
        for item in filter(None, (s.strip() for s in self.buckets.split(","))):
            name, _, path = item.partition("=")
            if not name or not path:
                raise InvalidParameterError(f"FACELEDGER_BUCKETS entry {item!r} must be name=/path.")
            out[name] = Path(path).expanduser()
        return BucketMap(out, self.data_dir / "buckets")

    def __repr__(self) -> str:
        # FACELEDGER_STORE may carry a PostgreSQL password: masked here as in every message
        from faceledger.store.pg_db import redact

        shown = ", ".join(f"{f.name}={(redact(self.store) if f.name == 'store' else getattr(self, f.name))!r}"
                          for f in fields(self))
        return f"Settings({shown})"


class BucketMap(dict[str, Path]):
    """Explicitly mapped buckets, plus the folders under ``folder``, looked up at each request.

    A folder added under ``<data_dir>/buckets`` after start-up is a bucket from
    the next request on, without a restart.
    """

    def __init__(self, explicit: dict[str, Path], folder: Path) -> None:
        super().__init__(explicit)
        self.folder = folder

    def _folder_bucket(self, name: object) -> Path | None:
        if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
            return None
        path = self.folder / name
        return path if path.is_dir() else None

    def get(self, name: str, default: Path | None = None) -> Path | None:  # type: ignore[override]
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        found = self._folder_bucket(name)
        return default if found is None else found

    def __missing__(self, name: str) -> Path:
        found = self._folder_bucket(name)
        if found is None:
            raise KeyError(name)
        return found

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or self._folder_bucket(name) is not None


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
