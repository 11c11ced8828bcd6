"""The service: one entry point (``dispatch``) over the operation modules.

It owns the heavy resources (catalog, vector index, engine pool, calibration
table), opened once and handed to the operations explicitly. It never parses
HTTP; transports call ``lookup_key`` and ``dispatch``.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ..engine import EngineSettings
from ..engine.calibration import (
    CalibrationTable,
    compare_threshold,
    expected_false_candidates,
    fmr_from_similarity,
    load_table,
    search_threshold,
)
from ..engine.scoring import Scorer
from ..errors import AccessDeniedError, FaceledgerError, HaltedError, InvalidParameterError
from ..settings import Settings
from ..store.catalog import Catalog
from ..store.db import Transaction
from ..store.ledger import Ledger
from ..store.vectors import VectorIndex, limit_blas_threads
from .checkpoints import CHECKPOINT, checkpoint_details, load_or_create_key
from .context import Principal, RequestContext, authorize
from .pagination import Paginator
from .policy import DEFAULT_PURPOSE, Purpose, load_policy
from .scores import Cohorts
from .workers import EnginePool

CANDIDATE_NOTE = "Candidates are leads for human review, not identifications."


@dataclass
class Call:
    operation: str
    params: dict
    principal: Principal
    ctx: RequestContext
    at: float = field(default_factory=time.time)
    rule: Purpose | None = None  # set once matching_rule has admitted the call


@dataclass(frozen=True)
class Threshold:
    requested: float | None
    applied: float
    floor: float
    gallery_size: int | None = None

    @property
    def raised(self) -> bool:
        return self.requested is not None and self.requested < self.floor

    def report(self, table: CalibrationTable) -> dict:
        out = {
            "ThresholdRequested": self.requested,
            "ThresholdApplied": round(self.applied, 4),
            "ThresholdFloor": round(self.floor, 4),
            "ThresholdRaised": self.raised,
            "ThresholdFalseMatchRate": fmr_from_similarity(self.applied),
            "CalibrationVersion": table.version,
        }
        if self.gallery_size is not None:
            out["GallerySize"] = self.gallery_size
            out["ExpectedFalseCandidates"] = expected_false_candidates(self.gallery_size, self.applied)
            out["Note"] = CANDIDATE_NOTE
        return {k: v for k, v in out.items() if v is not None}


Operation = Callable[["Service", Call], dict]


class Service:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        index: VectorIndex,
        engines: EnginePool,
        calibration: CalibrationTable | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.index = index
        self.ledger = Ledger(catalog)
        self.engines = engines
        self.engine_settings = engines.settings
        self.model_version = engines.settings.model_version
        self.calibration = calibration or load_table(self.model_version)
        try:
            self.scorer = Scorer.load(self.calibration, settings.score_normalization)
        except ValueError as exc:
            raise InvalidParameterError(f"FACELEDGER_SCORE_NORMALIZATION: {exc}.") from exc
        self.cohorts = Cohorts(index)
        self.buckets = settings.bucket_map()
        # Writers that change faces hold this from BEGIN until the index matches the commit.
        self.write_lock = threading.RLock()
        self.pages = Paginator(self._page_secret(), save=self._save_cursor, load=self.catalog.get_state)
        self.signing_key = load_or_create_key(Path(settings.data_dir))
        self.policy = load_policy(settings.policy_path(), max_expected_false=settings.max_expected_false,
                                  compare_fmr=settings.compare_fmr)
        self._note_policy()
        from .operations import OPERATIONS

        self.sweeper: Any = None

        self.operations: Mapping[str, Operation] = OPERATIONS  # type: ignore[assignment]
        from .operations import FACELEDGER_OPERATIONS

        self.own_operations = frozenset(FACELEDGER_OPERATIONS)
        from .video import VideoJobs

        self.video = VideoJobs(self)  # background video jobs; resumes any a stopped service left

    @classmethod
    def open(cls, settings: Settings, *, engines: EnginePool | None = None) -> Service:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        limit_blas_threads(1)  # searches are memory-bound; two BLAS threads only contend
        catalog = Catalog.open(settings.data_dir)
        index = VectorIndex()
        for coll in catalog.list_collections(None, 1_000_000):
            ids, matrix = catalog.iter_vectors(coll["collection_id"])
            index.load(coll["collection_id"], ids, matrix)
        own_engines = engines is None
        if engines is None:
            es = EngineSettings(detector=settings.detector, landmarks68=settings.landmarks68,
                                min_face_px=settings.min_face_px, landmarker=settings.landmarker)
            import os

            procs = settings.workers or os.cpu_count() or 1
            engines = EnginePool(es, processes=procs)
        try:
            svc = cls(settings, catalog, index, engines)
        except BaseException:
            # a bad setting or policy: leave no worker processes or open database behind the error
            if own_engines:
                engines.close()
            catalog.close()
            raise
        from .retention import Sweeper

        svc.sweeper = Sweeper(svc, settings.retention_sweep_s)
        svc.sweeper.start()
        return svc

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.close()
        self.video.close()
        self.engines.close()
        self.catalog.close()

    def _save_cursor(self, name: str, value: list) -> None:
        with self.catalog.transaction() as tx:
            self.catalog.set_state(tx, name, value)

    def _page_secret(self) -> bytes:
        path = Path(self.settings.data_dir) / "page.key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            data = path.read_bytes()
            if len(data) != 32:
                raise InvalidParameterError(f"{path} is damaged; delete it (page tokens in flight expire).") from None
            return data
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
        return path.read_bytes()

    # -- transport entry points --------------------------------------------
    def lookup_key(self, access_key_id: str) -> Principal | None:
        key = self.catalog.get_key(access_key_id)
        if key is None:
            return None
        return Principal(
            access_key_id=key["access_key_id"], secret=key["secret"], role=key["role"],
            revoked=bool(key.get("revoked")), label=key.get("label"), defaults=key.get("defaults") or {},
        )

    def dispatch(self, operation: str, params: dict, principal: Principal, context: dict) -> dict:
        op = self.operations.get(operation)
        if op is None:
            raise InvalidParameterError(f"faceledger does not offer the operation {operation}.")
        authorize(principal, operation)
        call = Call(operation, params, principal, RequestContext.from_transport(context))
        return op(self, call)

    # -- shared rules --------------------------------------------------------
    def compare_threshold(self, requested: float | None, rule: Purpose | None = None) -> Threshold:
        fmr = rule.compare_fmr if rule else self.policy.purpose(DEFAULT_PURPOSE).compare_fmr
        return _threshold(requested, compare_threshold(fmr), None)

    def search_threshold(self, requested: float | None, gallery_size: int, rule: Purpose | None = None) -> Threshold:
        ceiling = rule.max_expected_false if rule else self.policy.purpose(DEFAULT_PURPOSE).max_expected_false
        return _threshold(requested, search_threshold(gallery_size, ceiling), gallery_size)

    def halted(self) -> dict | None:
        state = self.catalog.get_state("halt")
        return state if state and state.get("halted") else None

    def matching_rule(self, call: Call, collection_id: str | None) -> Purpose:
        """The purpose a match runs under, after every check that can refuse it.

        Refusals (halt, unknown purpose, collection not allowed, missing case)
        are written to the ledger before the error is raised.
        """
        halt = self.halted()
        if halt:
            self.refuse(call, collection_id, "halt", HaltedError(
                f"Matching is halted since {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(halt['at']))} UTC "
                f"by {halt['by']}: {halt['reason']}. An admin other than {halt['by']} can resume it."))
        bound = call.principal.defaults
        for what in ("purpose", "case"):
            asked = getattr(call.ctx, what)
            if bound.get(what) and asked and asked != bound[what]:
                self.refuse(call, collection_id, what, AccessDeniedError(
                    f"This key is bound to {what} {bound[what]!r}; it cannot search under {asked!r}."))
        name = call.ctx.purpose or bound.get("purpose") or DEFAULT_PURPOSE
        try:
            rule = self.policy.purpose(name)
        except AccessDeniedError as exc:
            self.refuse(call, collection_id, "purpose", exc)
        if collection_id is not None and not rule.may_search(collection_id):
            self.refuse(call, collection_id, "purpose", AccessDeniedError(
                f"Purpose {name!r} may not search collection {collection_id!r} under policy {self.policy.version}."))
        if rule.case_required and not self.case_of(call):
            self.refuse(call, collection_id, "case", AccessDeniedError(
                f"Purpose {name!r} requires a case reference: send X-Faceledger-Case or use a key with a default case."))
        call.rule = rule
        return rule

    def case_of(self, call: Call) -> str | None:
        return call.ctx.case or call.principal.defaults.get("case")

    def refuse(self, call: Call, collection_id: str | None, kind: str, error: FaceledgerError) -> NoReturn:
        with self.catalog.transaction() as tx:
            self.record(tx, call, collection_id, {"refused": kind, "message": error.message})
        raise error

    def _note_policy(self) -> None:
        """A changed policy is itself a ledger event (PolicyLoaded)."""
        if self.catalog.get_state("policy_sha256") == self.policy.sha256:
            return
        with self.catalog.transaction() as tx:
            self.catalog.set_state(tx, "policy_sha256", self.policy.sha256)
            self.ledger.append(tx, operation="PolicyLoaded", principal=None, collection_id=None,
                               details=self.policy.summary())

    def record(self, tx: Transaction, call: Call, collection_id: str | None, details: dict) -> dict:
        """One ledger record for this call, inside the caller's transaction."""
        base = {
            "request_id": call.ctx.request_id,
            "purpose": call.ctx.purpose or call.principal.defaults.get("purpose") or DEFAULT_PURPOSE,
            "case": self.case_of(call),
            "role": call.principal.role,
            "model_version": self.model_version,
            "calibration": self.calibration.version,
            "score_normalization": self.scorer.version,
            "policy_version": self.policy.version,
            "started_at": call.at,
            "ended_at": time.time(),
            # the review rule in force when the search ran, not whatever the policy says later
            "confirmations_required": (2 if call.rule.two_person_review else 1) if call.rule else None,
        }
        base.update(details)
        rec = self.ledger.append(
            tx, operation=call.operation, principal=call.principal.access_key_id,
            collection_id=collection_id, details={k: v for k, v in base.items() if v is not None},
            at=call.at,
        )
        if self.settings.checkpoint_every > 0 and rec["seq"] % self.settings.checkpoint_every == 0:
            self.checkpoint(tx)
        return rec

    def checkpoint(self, tx: Transaction) -> dict:
        """Sign the current ledger head (inside ``tx``) and append the Checkpoint record."""
        head = self.ledger.head()
        if head is None:
            raise InvalidParameterError("The ledger is empty: nothing to sign.")
        return self.ledger.append(tx, operation=CHECKPOINT, principal=None, collection_id=None,
                                  details=checkpoint_details(self.signing_key, head["seq"], head["hash"]))


def _threshold(requested: float | None, floor: float, gallery: int | None) -> Threshold:
    if requested is not None and not 0 <= float(requested) <= 100:
        raise InvalidParameterError("Thresholds are between 0 and 100.")
    applied = floor if requested is None or requested < floor else float(requested)
    return Threshold(None if requested is None else float(requested), applied, floor, gallery)
