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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol

from ..engine import EngineSettings
from ..engine.calibration import (
    CalibrationTable,
    compare_threshold,
    expected_false_candidates,
    fmr_from_similarity,
    search_threshold,
)
from ..engine.descriptor_spec import DescriptorSpec
from ..engine.packs import store_dir, uncalibrated_table
from ..engine.scoring import Scorer
from ..errors import (
    AccessDeniedError,
    FaceledgerError,
    HaltedError,
    InvalidParameterError,
    ModelFileError,
    ModelNotCalibratedError,
    PackUnavailableError,
)
from ..settings import Settings
from ..store.db import Transaction
from ..store.ledger import Ledger
from ..store.opening import open_catalog, refuse_damaged
from ..store.perms import PRIVATE_UMASK, make_private_dir
from ..store.pg_vectors import PgVectorIndex
from ..store.protocols import CatalogStore, LedgerStore, VectorStore
from ..store.synced_index import SyncedIndex
from ..store.vectors import limit_blas_threads
from .audit_trail import append_checkpoint, last_signed_seq, retire_legacy_key
from .candidates import awaits_review
from .checkpoints import CHECKPOINT, SIGNING_KEY, fingerprint, signing_key_details
from .context import Principal, RequestContext, authorize
from .packs import (
    Pack,
    Packs,
    check_calibrated,
    cohort_path,
    engine_settings_for,
    load_cohort,
    spec_for,
    tables_for,
)
from .pagination import Paginator
from .policy import DEFAULT_PURPOSE, Purpose, load_policy
from .scores import Cohorts
from .signing_key import load_signing_key, take_legacy_key
from .workers import EnginePool

CANDIDATE_NOTE = "Candidates are leads for human review, not identifications."
INVESTIGATIVE_NOTE = ("Investigative candidate list (purpose with a lowered floor): for human review only; "
                      "expect false candidates, none of them is an identification.")


@dataclass
class Call:
    operation: str
    params: dict
    principal: Principal
    ctx: RequestContext
    at: float = field(default_factory=time.time)
    rule: Purpose | None = None  # set once matching_rule has admitted the call
    pack: Pack | None = None  # the model pack the call computes or compares with (None: the default)


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


def match_report(table: CalibrationTable, threshold: Threshold, scoring: dict, search_id: int,
                 rule: Purpose) -> dict:
    """A match response's ``Faceledger`` member (also sent as ``x-faceledger-*`` headers)."""
    out = {**threshold.report(table), **scoring, "SearchId": search_id, "Purpose": rule.name}
    if rule.investigative:
        out["Investigative"] = True
        out["Note"] = INVESTIGATIVE_NOTE
    return out


Operation = Callable[["Service", Call], dict]

# What a pack without its calibration table may not do: everything that makes,
# stores or scores descriptors for matching (DetectFaces and the catalogue reads stay open).
NEEDS_CALIBRATION = frozenset({
    "CreateCollection", "IndexFaces", "SearchFaces", "SearchFacesByImage", "CompareFaces",
    "SearchUsers", "SearchUsersByImage", "StartFaceSearch", "AssociateFaces",
})


class Closeable(Protocol):
    def close(self) -> None: ...


def default_workers(api_processes: int = 1) -> int:
    """Engine workers per API process by default: the cores shared out among the API processes (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, api_processes))


class Service:
    def __init__(
        self,
        settings: Settings,
        catalog: CatalogStore,
        index: VectorStore,
        engines: EnginePool,
        calibration: CalibrationTable | None = None,
        *,
        operations: Mapping[str, Operation] | None = None,
        own_operations: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.catalog: CatalogStore = catalog
        self.index: VectorStore = index
        self.ledger: LedgerStore = Ledger(catalog)
        self.engines = engines
        self.engine_settings = engines.settings
        self.model_version = engines.settings.model_version
        # A pack without its calibration table may detect faces but never match: the placeholder
        # table scores everything Similarity 0 and dispatch refuses the operations in
        # NEEDS_CALIBRATION (docs/model-packs.md). Other packs (collections pinned to them) are
        # opened at first use and refused with the reason when they cannot match.
        self.pack = engines.settings.pack
        self.uncalibrated: ModelNotCalibratedError | None = None
        spec = spec_for(self.model_version, settings.data_dir)
        try:
            default = self._pack(spec, engines, calibration, default=True)
        except ModelNotCalibratedError as exc:
            self.uncalibrated = exc
            table = uncalibrated_table(self.model_version)
            default = Pack(spec, engines, table, Scorer(table))
        self.packs = Packs(default, self._open_pack)
        self.calibration = default.calibration
        self.scorer = default.scorer
        self.cohorts = Cohorts(index)
        self.buckets = settings.bucket_map()
        # Writers that change faces hold this from BEGIN until the index matches the commit
        # (a SyncedIndex catching up with other processes' writes holds the same lock).
        self.write_lock = index.writer_lock if isinstance(index, SyncedIndex) else threading.RLock()
        self.pages = Paginator(self._page_secret(), save=self._save_cursor, load=self.catalog.get_state)
        legacy = take_legacy_key(settings)
        self.signing_key = legacy or load_signing_key(settings, create=True)
        self._note_signing_key()
        if legacy is not None:
            self.signing_key = retire_legacy_key(settings, catalog, legacy)
        self.policy = load_policy(settings.policy_path(), max_expected_false=settings.max_expected_false,
                                  compare_fmr=settings.compare_fmr)
        self._note_policy()
        # Assembled by service/assembly.py, which knows the operation modules: core imports none of them.
        self.operations: Mapping[str, Operation] = dict(operations or {})
        self.own_operations = frozenset(own_operations or ())
        self.video: Closeable | None = None  # background video jobs (assembly.VideoJobs)
        self.sweeper: Closeable | None = None  # the retention sweeper thread

    def _pack(self, spec: DescriptorSpec, engines: EnginePool, table: CalibrationTable | None = None, *,
              default: bool = False) -> Pack:
        """A pack ready to match: calibrated for its descriptors, its cohort file checked."""
        calibration = check_calibrated(spec, table, self.settings.data_dir)
        cohort_table = None
        if table is None and self.settings.score_normalization == "cohort":
            cohort_table = tables_for(spec, self.settings.data_dir, cohort=True)[1]
        try:
            scorer = Scorer.load(calibration, self.settings.score_normalization, cohort=cohort_table)
        except ValueError as exc:
            raise InvalidParameterError(f"FACELEDGER_SCORE_NORMALIZATION: {exc}.") from exc
        except ModelFileError as exc:  # a cohort table missing or measured for another pack
            raise PackUnavailableError(f"Model pack {spec.model_version}: {exc.message}") from exc
        path = cohort_path(self.settings.data_dir, spec.model_version, self.settings.cohort_file if default else "")
        cohort = load_cohort(path, spec) if path is not None and scorer.enabled else None
        return Pack(spec, engines, calibration, scorer, cohort)

    def _open_pack(self, model_version: str) -> Pack:
        """Another pack than the default, at its first use: its engine pool started like the default one."""
        spec = spec_for(model_version, self.settings.data_dir)
        check_calibrated(spec, None, self.settings.data_dir)  # refuse before starting any worker
        engines = self.engines.like(engine_settings_for(self.engine_settings, model_version))
        try:
            return self._pack(spec, engines)
        except BaseException:
            engines.close()
            raise

    @staticmethod
    def open_store(settings: Settings) -> tuple[CatalogStore, VectorStore]:
        """The catalog FACELEDGER_STORE names (checked; data directory private) and its vector index."""
        # process-wide: everything the service writes lives in the data directory and is private
        os.umask(PRIVATE_UMASK)
        make_private_dir(settings.data_dir)
        limit_blas_threads(1)  # searches are memory-bound; two BLAS threads only contend
        refuse_damaged(settings)
        catalog = open_catalog(settings)
        try:
            # PostgreSQL: pgvector searches the catalog's rows through its pool (every process sees a commit)
            pool = getattr(catalog, "vector_pool", None)
            index: VectorStore = PgVectorIndex.from_settings(pool, settings) if pool is not None else memory_index(catalog)
        except BaseException:
            catalog.close()
            raise
        return catalog, index

    @staticmethod
    def engine_settings_for(settings: Settings) -> EngineSettings:
        return EngineSettings(detector=settings.detector, landmarks68=settings.landmarks68,
                              min_face_px=settings.min_face_px, cpu_budget_s=settings.engine_cpu_budget_s,
                              landmarker=settings.landmarker, model=settings.model,
                              model_store=str(store_dir(settings.data_dir)))

    @staticmethod
    def open_engines(settings: Settings) -> EnginePool:
        es = Service.engine_settings_for(settings)
        procs = settings.workers or default_workers(settings.processes)
        return EnginePool(es, processes=procs, timeout_s=settings.engine_timeout_s,
                          max_rss_mb=settings.engine_max_rss_mb, max_memory_mb=settings.engine_max_memory_mb)

    def engine_state(self) -> dict[str, Any]:
        """The engine workers' state for ``/health`` and ``/ready`` ("ready": one can take work).

        ``api_pid`` names the API process that answered (``serve --processes N`` runs several on one port).
        """
        return {**self.engines.state(), "api_pid": os.getpid()}

    def store_state(self) -> dict[str, Any]:
        """The store for ``/ready``: ``kind`` (sqlite | postgresql), ``reachable``, and ``error`` when it is not."""
        kind = self.catalog.dialect
        try:
            self.catalog.ping()
        except FaceledgerError as exc:
            return {"kind": kind, "reachable": False, "error": f"{exc.code}: {exc.message}"}
        return {"kind": kind, "reachable": True}

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.close()
        if self.video is not None:
            self.video.close()
        self.packs.close()
        self.engines.close()
        self.catalog.close()

    def _save_cursor(self, name: str, value: list) -> None:
        with self.catalog.transaction() as tx:
            self.catalog.set_state(tx, name, value)

    def _page_secret(self) -> bytes:
        """The data directory's pagination key, made once: written aside, then linked into place.

        ``os.link`` fails if the name exists, so processes starting together agree on one key and
        none ever reads a half-written file (O_EXCL then write left an empty one visible).
        """
        path = Path(self.settings.data_dir) / "page.key"
        if not path.exists():
            aside = path.with_name(f".page.key.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(secrets.token_bytes(32))
                    fh.flush()
                    os.fsync(fh.fileno())
                try:
                    os.link(aside, path)
                except FileExistsError:
                    pass  # another process made it first: use theirs
            finally:
                aside.unlink(missing_ok=True)
        data = path.read_bytes()
        if len(data) != 32:
            raise InvalidParameterError(f"{path} is damaged; delete it (page tokens in flight expire).")
        return data

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
        if self.uncalibrated is not None and operation in NEEDS_CALIBRATION and self._uses_default_pack(params):
            raise ModelNotCalibratedError(f"{operation} refused: {self.uncalibrated.message}")
        call = Call(operation, params, principal, RequestContext.from_transport(context))
        return op(self, call)

    def _uses_default_pack(self, params: dict) -> bool:
        """Whether a matching call would score with the default pack (the one without its tables).

        A call on a collection pinned to another pack scores with that pack (opened and checked on its
        own), so an uncalibrated default does not refuse it; CreateCollection and CompareFaces, and a
        call whose collection cannot be read, use or meet the default and stay refused.
        """
        cid = params.get("CollectionId")
        if not isinstance(cid, str):
            return True
        try:
            return self.catalog.get_collection(cid)["model_version"] == self.model_version
        except FaceledgerError:
            return True

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
        if rule.investigative and bound.get("purpose") != name:
            # the lowered floor is sanctioned per key: an admin issues keys for it, a header alone is not enough
            self.refuse(call, collection_id, "purpose", AccessDeniedError(
                f"Purpose {name!r} is investigative (a lowered floor): only a key created for it may search under "
                f"it (`faceledger keys create --role searcher --purpose {name}`)."))
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
            self.ledger.serialise(tx)  # processes starting together on one store note it once
            if self.catalog.get_state("policy_sha256") == self.policy.sha256:
                return
            self.catalog.set_state(tx, "policy_sha256", self.policy.sha256)
            self.append(tx, operation="PolicyLoaded", principal=None, collection_id=None,
                        details=self.policy.summary())

    def _note_signing_key(self) -> None:
        """A key the ledger has not named yet is published in it (SigningKey), before it signs anything."""
        with self.catalog.transaction() as tx:
            self.ledger.serialise(tx)  # processes starting together on one store publish it once
            last = self.ledger.latest(SIGNING_KEY)
            named = last["details"] if last is not None and isinstance(last["details"], dict) else {}
            if named.get("key_fingerprint") == fingerprint(self.signing_key):
                return
            previous = named.get("key_fingerprint")
            self.append(tx, operation=SIGNING_KEY, principal=None, collection_id=None,
                        details=signing_key_details(self.signing_key, None, previous, None))

    def record(self, tx: Transaction, call: Call, collection_id: str | None, details: dict) -> dict:
        """One ledger record for this call, inside the caller's transaction."""
        base = {
            "request_id": call.ctx.request_id,
            "purpose": call.ctx.purpose or call.principal.defaults.get("purpose") or DEFAULT_PURPOSE,
            "case": self.case_of(call),
            "role": call.principal.role,
            "model_version": (call.pack or self.packs.default).model_version,
            "calibration": (call.pack or self.packs.default).calibration.version,
            "score_normalization": (call.pack or self.packs.default).scorer.version,
            "policy_version": self.policy.version,
            "started_at": call.at,
            "ended_at": time.time(),
            # the review rule in force when the search ran, not whatever the policy says later
            "confirmations_required": (2 if call.rule.two_person_review else 1) if call.rule else None,
            # a search under a lowered, investigative floor says so in its own record
            "investigative": True if call.rule and call.rule.investigative else None,
        }
        base.update(details)
        return self.append(
            tx, operation=call.operation, principal=call.principal.access_key_id,
            collection_id=collection_id, details={k: v for k, v in base.items() if v is not None},
            at=call.at,
        )

    def append(self, tx: Transaction, **record: Any) -> dict:
        """Every ledger write goes here: the record, then a checkpoint once it is due.

        Due means ``checkpoint_every`` records since the last signed one, whatever wrote
        them, so ``audit verify`` can require a checkpoint in every interval.
        """
        rec = self.ledger.append(tx, **record)
        if awaits_review(rec):  # the review queue's index, in the same transaction as the search's record
            self.catalog.add_pending_review(tx, rec["seq"], record.get("collection_id"))
        every = self.settings.checkpoint_every
        if every > 0 and rec["operation"] != CHECKPOINT and rec["seq"] - self._last_signed_seq() >= every:
            self.checkpoint(tx)
        return rec

    def _last_signed_seq(self) -> int:
        return last_signed_seq(self.ledger)

    def checkpoint(self, tx: Transaction) -> dict:
        """Sign the current ledger head (inside ``tx``) and append the Checkpoint record."""
        return append_checkpoint(self.ledger, tx, self.signing_key)


def memory_index(catalog: CatalogStore) -> VectorStore:
    """The in-process index, loaded from the catalog (either store); it catches up with the writes other
    processes make to the same store before each read (store/synced_index.py)."""
    index = SyncedIndex(catalog)  # type: ignore[arg-type]
    index.load_all()
    return index


def _threshold(requested: float | None, floor: float, gallery: int | None) -> Threshold:
    if requested is not None and not 0 <= float(requested) <= 100:
        raise InvalidParameterError("Thresholds are between 0 and 100.")
    applied = floor if requested is None or requested < floor else float(requested)
    return Threshold(None if requested is None else float(requested), applied, floor, gallery)
