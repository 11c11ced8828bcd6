"""Retention and consent: what may be kept, for how long, and the receipts of deletion.

A collection declares its retention with the reserved tag
``faceledger:retention-days`` (a positive integer) and whether enrolment needs
consent with ``faceledger:consent-required`` ("true"). Consent records (who,
notice text and version, purpose, term, when) are created and withdrawn
through the admin API; IndexFaces into a consent-requiring collection must
name a live one in the ``X-Faceledger-Consent`` header. Expiry and withdrawal
delete the vectors and rows, and each deletion writes a ``DeletionReceipt``
ledger record. The sweep runs in the service and on demand.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from typing import Any

from ..errors import AccessDeniedError, ConflictError, InvalidParameterError, ResourceNotFoundError
from ..store.db import Transaction
from . import turns
from .core import Call, Service
from .replay import claim, remember, replayed
from .replay import purge as purge_replays
from .thumbnails import check_tags as check_thumbnail_tags
from .thumbnails import sweep_expired

log = logging.getLogger("faceledger.retention")

RETENTION_TAG = "faceledger:retention-days"
CONSENT_TAG = "faceledger:consent-required"
DAY = 86400.0
EARLIEST_CONSENT = 946_684_800.0  # 2000-01-01 UTC: no face-template consent predates it
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def check_reserved_tags(tags: dict[str, str]) -> None:
    """Validate faceledger's reserved tags at CreateCollection/TagResource."""
    if RETENTION_TAG in tags:
        value = tags[RETENTION_TAG]
        if not value.isdigit() or not 1 <= int(value) <= 36500:
            raise InvalidParameterError(f"Tag {RETENTION_TAG} must be a whole number of days, 1-36500.")
    if CONSENT_TAG in tags and tags[CONSENT_TAG] not in ("true", "false"):
        raise InvalidParameterError(f"Tag {CONSENT_TAG} must be 'true' or 'false'.")
    check_thumbnail_tags(tags)


def consent_required(collection: dict) -> bool:
    return collection.get("tags", {}).get(CONSENT_TAG) == "true"


def retention_days(collection: dict) -> int | None:
    value = collection.get("tags", {}).get(RETENTION_TAG)
    return int(value) if value else None


def consent_live(consent: dict, now: float) -> str | None:
    """None when the consent may be used now, else why not."""
    if consent["withdrawn_at"] is not None:
        return "it was withdrawn"
    if consent["term_days"] and consent["given_at"] + consent["term_days"] * DAY <= now:
        return "its term has ended"
    return None


def consent_for_enrolment(svc: Service, call: Call, collection: dict) -> str | None:
    """The consent id an IndexFaces call enrols under; refuses when one is required and missing."""
    consent_id = call.ctx.consent
    if consent_id is None:
        if consent_required(collection):
            raise AccessDeniedError(
                f"Collection {collection['collection_id']} requires consent: send X-Faceledger-Consent "
                "with the id of a live consent record.")
        return None
    consent = svc.catalog.get_consent(consent_id)
    why = consent_live(consent, call.at)
    if why:
        raise AccessDeniedError(f"Consent {consent_id} cannot be used: {why}.")
    return consent_id


def recheck_consent(svc: Service, tx: Transaction, consent_id: str, now: float) -> None:
    """Inside the enrolment's write transaction: the consent is still live, and stays so until it commits."""
    why = consent_live(svc.catalog.lock_consent(tx, consent_id), now)
    if why:
        raise AccessDeniedError(f"Consent {consent_id} cannot be used: {why}.")


def check_given_at(given: object, now: float, skew_s: float) -> float:
    """GivenAt as epoch seconds: finite, not before 2000, not later than now plus the clock skew."""
    if isinstance(given, bool) or not isinstance(given, int | float):
        raise InvalidParameterError("GivenAt must be a finite number of epoch seconds.")
    try:
        given = float(given)  # a JSON integer may be too large for a float
    except OverflowError:
        given = math.inf
    if not math.isfinite(given):
        raise InvalidParameterError("GivenAt must be a finite number of epoch seconds.")
    if not EARLIEST_CONSENT <= given <= now + skew_s:
        raise InvalidParameterError(
            f"GivenAt {given!r} is out of range: epoch seconds from {EARLIEST_CONSENT:.0f} (2000-01-01) "
            f"to now plus {skew_s:.0f} s of clock skew.")
    return given


def create_consent(svc: Service, call: Call) -> dict:
    earlier = replayed(svc, call)  # the same signed request again: the consent it created, not a second one
    if earlier is not None:
        return earlier
    p = call.params
    record: dict[str, Any] = {}
    for member, key in (("Subject", "subject"), ("NoticeText", "notice_text"), ("NoticeVersion", "notice_version"),
                        ("Purpose", "purpose")):
        value = p.get(member)
        if not isinstance(value, str) or not value.strip():
            raise InvalidParameterError(f"{member} is required.")
        record[key] = value.strip()
    term = p.get("TermDays")
    if term is not None and (not isinstance(term, int) or isinstance(term, bool) or not 1 <= term <= 36500):
        raise InvalidParameterError("TermDays must be a whole number of days, 1-36500.")
    if record["purpose"] not in svc.policy.purposes:
        known = ", ".join(sorted(svc.policy.purposes))
        raise InvalidParameterError(
            f"Purpose {record['purpose']!r} is not defined by policy {svc.policy.version}; "
            f"a consent must name one of: {known}.")
    given = check_given_at(p.get("GivenAt", call.at), call.at, svc.settings.clock_skew_s)
    record.update(term_days=term, given_at=given, created_by=call.principal.access_key_id)
    with svc.catalog.transaction() as tx:
        earlier = claim(svc, tx, call)  # a concurrent replay (any process) may have committed first
        if earlier is not None:
            return earlier
        consent = svc.catalog.create_consent(tx, record)
        svc.record(tx, call, None, {"consent_id": consent["consent_id"], "subject": consent["subject"],
                                    "notice_version": consent["notice_version"], "consent_purpose": consent["purpose"],
                                    "term_days": term})
        response = {"Consent": _wire(consent)}
        remember(svc, tx, call, response)
    return response


def _wire(consent: dict) -> dict:
    names = {"consent_id": "ConsentId", "subject": "Subject", "notice_text": "NoticeText",
             "notice_version": "NoticeVersion", "purpose": "Purpose", "term_days": "TermDays",
             "given_at": "GivenAt", "withdrawn_at": "WithdrawnAt"}
    return {names[k]: v for k, v in consent.items() if k in names and v is not None}


def list_consents(svc: Service, call: Call) -> dict:
    subject = call.params.get("Subject")
    if subject is not None and not isinstance(subject, str):
        raise InvalidParameterError("Subject must be a string.")
    return {"Consents": [_wire(c) for c in svc.catalog.list_consents(call.params.get("Subject"))]}


def withdraw_consent(svc: Service, call: Call) -> dict:
    """Withdraw a consent and delete its faces in one transaction, with the ledger records.

    A consent withdrawn earlier whose faces are still stored (a data directory
    written before withdrawal was atomic) is finished here rather than refused.
    """
    consent_id = call.params.get("ConsentId")
    if not isinstance(consent_id, str) or not UUID.match(consent_id):
        raise InvalidParameterError("ConsentId must be a consent record id.")
    with svc.write_lock:
        with svc.catalog.transaction() as tx:
            # locked before its faces are listed: an enrolment under it (another process) commits first
            consent = svc.catalog.lock_consent(tx, consent_id, exclusive=True)
            targets = svc.catalog.faces_with_consent(consent_id)
            if consent["withdrawn_at"] is None:
                consent = svc.catalog.withdraw_consent(tx, consent_id, call.at)
            elif not targets:
                raise ConflictError(f"Consent {consent_id} was already withdrawn.")
            svc.record(tx, call, None, {"consent_id": consent_id})
            deleted = _delete_in(svc, tx, call, targets, "consent-withdrawn", {"consent_id": consent_id})
        _unindex(svc, deleted)
    return {"Consent": _wire(consent), "DeletedFaces": sum(len(ids) for ids in deleted.values())}


def _delete_in(svc: Service, tx: Transaction, call: Call, targets: list[tuple[str, str]], reason: str,
               extra: dict) -> dict[str, list[str]]:
    """Inside ``tx``: delete faces grouped by collection, one DeletionReceipt per collection.

    A collection deleted since the targets were listed is skipped (its faces went with it).
    Returns the ids deleted per collection, for the index once ``tx`` commits.
    """
    by_collection: dict[str, list[str]] = {}
    for cid, fid in targets:
        by_collection.setdefault(cid, []).append(fid)
    deleted: dict[str, list[str]] = {}
    receipt = Call("DeletionReceipt", {}, call.principal, call.ctx, call.at)
    for cid, face_ids in sorted(by_collection.items()):
        try:
            rows = svc.catalog.get_faces(cid, face_ids)
        except ResourceNotFoundError:
            continue
        # faces in a user lose the association first: consent outranks the grouping
        for user in sorted({r["user_id"] for r in rows if r.get("user_id")}):
            svc.catalog.disassociate_faces(tx, cid, user, [r["face_id"] for r in rows if r.get("user_id") == user])
        gone = svc.catalog.delete_faces(tx, cid, face_ids)
        if gone:
            svc.record(tx, receipt, cid, {"reason": reason, "face_ids": gone, **extra})
            deleted[cid] = gone
    return deleted


def _unindex(svc: Service, deleted: dict[str, list[str]]) -> None:
    """After the commit (under the write lock): the index follows the catalog."""
    for cid, ids in deleted.items():
        svc.index.remove(cid, ids)


def delete_with_receipts(svc: Service, call: Call, targets: list[tuple[str, str]], reason: str,
                         extra: dict) -> int:
    """Delete faces (and vectors), one transaction and one DeletionReceipt per collection.

    Each collection's deletion is whole or absent; a crash between collections
    leaves the rest for the next sweep, which finds them by the same rule.
    """
    by_collection: dict[str, list[tuple[str, str]]] = {}
    for target in targets:
        by_collection.setdefault(target[0], []).append(target)
    total = 0
    for _cid, part in sorted(by_collection.items()):
        with svc.write_lock:
            with svc.catalog.transaction() as tx:
                deleted = _delete_in(svc, tx, call, part, reason, extra)
            _unindex(svc, deleted)
        total += sum(len(ids) for ids in deleted.values())
    return total


def _delete_by_consent(svc: Service, call: Call, consents: list[dict]) -> int:
    """Delete the faces enrolled under ``consents`` (found in one scan), receipts naming each consent."""
    by_consent: dict[str, list[tuple[str, str]]] = {}
    for cid, fid, consent_id in svc.catalog.faces_with_consents([c["consent_id"] for c in consents]):
        by_consent.setdefault(consent_id, []).append((cid, fid))
    total = 0
    for consent in consents:
        targets = by_consent.get(consent["consent_id"])
        if targets:
            reason = "consent-withdrawn" if consent["withdrawn_at"] is not None else "consent-expired"
            total += delete_with_receipts(svc, call, targets, reason, {"consent_id": consent["consent_id"]})
    return total


def finish_withdrawals(svc: Service) -> int:
    """At start-up: delete faces still stored under a withdrawn consent; returns how many.

    Withdrawal is one transaction now, but a data directory written by an
    earlier faceledger may hold a withdrawal whose deletion never ran.
    """
    from .context import Principal, RequestContext

    system = Principal("faceledger-startup", "", "admin", label="start-up")
    call = Call("RetentionSweep", {}, system, RequestContext(request_id="startup"), time.time())
    withdrawn = [c for c in svc.catalog.list_consents() if c["withdrawn_at"] is not None]
    total = _delete_by_consent(svc, call, withdrawn)
    if total:
        log.warning("finished %d face deletion(s) of consent withdrawals a crash cut short", total)
    return total


def sweep(svc: Service, call: Call) -> dict:
    """Delete every enrolment past its collection's retention or its consent's term."""
    now = call.at
    expired: list[tuple[str, str]] = []
    for coll in svc.catalog.list_collections(None, 1_000_000):
        days = retention_days(coll)
        if days:
            expired += [(coll["collection_id"], f) for f in
                        svc.catalog.faces_created_before(coll["collection_id"], now - days * DAY)]
    deleted = delete_with_receipts(svc, call, expired, "retention-expired", {})
    # withdrawn (a withdrawal an older version cut short) or expired
    lapsed = _delete_by_consent(svc, call, [c for c in svc.catalog.list_consents() if consent_live(c, now)])
    thumbs = sweep_expired(svc, call)
    with svc.catalog.transaction() as tx:
        purge_replays(svc, tx, now)
        svc.catalog.prune_face_changes(tx, now - FACE_CHANGES_KEEP_S)
        svc.record(tx, call, None, {"retention_deleted": deleted, "consent_deleted": lapsed,
                                    "thumbnails_deleted": thumbs})
    return {"RetentionDeleted": deleted, "ConsentDeleted": lapsed, "ThumbnailsDeleted": thumbs}


def schedule(svc: Service, call: Call) -> dict:
    rows = []
    for coll in svc.catalog.list_collections(None, 1_000_000):
        days = retention_days(coll)
        rows.append({"CollectionId": coll["collection_id"], "RetentionDays": days,
                     "ConsentRequired": consent_required(coll), "FaceCount": coll["face_count"],
                     "Rule": (f"enrolments are deleted {days} days after enrolment" if days
                              else "no retention period declared: kept until deleted")})
    return {"Collections": rows, "LedgerRetentionDays": svc.settings.ledger_retention_days}


SWEEP_TURN = "retention_sweep"
# The lease outlives most of an interval: the holder's next tick renews it; another process's tick finds
# it taken unless the holder stopped sweeping, so the sweep runs about once per interval across processes.
SWEEP_TURN_SHARE = 0.9
FACE_CHANGES_KEEP_S = 86400.0  # the face change log (store/changes.py) the sweep keeps; older readers reload


class Sweeper:
    """Runs ``sweep`` in the background every ``interval`` seconds until closed (once among several processes)."""

    def __init__(self, svc: Service, interval: float) -> None:
        self._svc, self._interval = svc, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention-sweep", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def _run(self) -> None:
        from .context import Principal, RequestContext

        system = Principal("faceledger-retention", "", "admin", label="retention sweep")
        while not self._stop.wait(self._interval):
            try:
                # several API processes on one store: one sweep per interval among them all
                if not turns.take(self._svc, SWEEP_TURN, SWEEP_TURN_SHARE * self._interval):
                    continue
                sweep(self._svc, Call("RetentionSweep", {}, system, RequestContext(request_id="sweep"), time.time()))
            except ResourceNotFoundError:  # a collection vanished mid-sweep: the next sweep catches up
                continue
            except Exception:  # never let one failure stop retention for the life of the process
                log.exception("retention sweep failed; it runs again in %s s", self._interval)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
