"""faceledger's own operations (``X-Amz-Target: FaceledgerService.<Op>``): halt, status, checkpoints.

Halt stops all matching at once; resuming needs an admin key other than the
one that halted. Both are ledger events. Checkpoints sign the ledger head.
"""

from __future__ import annotations

import time

from ..errors import AccessDeniedError, ConflictError, InvalidParameterError
from .checkpoints import public_pem
from .core import Call, Service


def _text(call: Call, member: str, *, required: bool = True, limit: int = 2000) -> str | None:
    value = call.params.get(member)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidParameterError(f"{member} must be a non-empty string of at most {limit} characters.")
    return value.strip()


def halt(svc: Service, call: Call) -> dict:
    reason = _text(call, "Reason")
    with svc.catalog.transaction() as tx:
        if svc.halted():
            raise ConflictError("Matching is already halted.")
        state = {"halted": True, "by": call.principal.access_key_id, "reason": reason, "at": call.at}
        svc.catalog.set_state(tx, "halt", state)
        rec = svc.record(tx, call, None, {"reason": reason})
    return {"Halted": True, "Reason": reason, "HaltedBy": state["by"], "LedgerSeq": rec["seq"]}


def resume(svc: Service, call: Call) -> dict:
    reason = _text(call, "Reason")
    with svc.catalog.transaction() as tx:
        state = svc.halted()
        if not state:
            raise ConflictError("Matching is not halted.")
        if state["by"] == call.principal.access_key_id:
            raise AccessDeniedError(
                "The key that halted matching cannot resume it: a second admin must review and resume.")
        svc.catalog.set_state(tx, "halt", {"halted": False, "resumed_by": call.principal.access_key_id,
                                           "reason": reason, "at": call.at})
        rec = svc.record(tx, call, None, {"reason": reason, "halted_by": state["by"], "halt_reason": state["reason"],
                                          "halted_for_s": round(call.at - state["at"], 3)})
    return {"Halted": False, "Reason": reason, "LedgerSeq": rec["seq"]}


def get_status(svc: Service, call: Call) -> dict:
    halt_state = svc.halted()
    head = svc.ledger.head()
    return {
        "Halted": bool(halt_state),
        "Halt": halt_state,
        "ModelVersion": svc.model_version,
        "CalibrationVersion": svc.calibration.version,
        "ScoreNormalization": svc.scorer.version,
        "ModelPack": {"Name": svc.pack.name, "Version": svc.pack.version, "Licences": svc.pack.licences(),
                      "Dimension": svc.pack.spec(svc.model_version).dim,
                      "Metric": svc.pack.spec(svc.model_version).metric, "Calibrated": svc.uncalibrated is None},
        "Policy": svc.policy.summary(),
        "LedgerHead": {"Seq": head["seq"], "Hash": head["hash"]} if head else None,
        "PublicKey": public_pem(svc.signing_key),
        "Time": time.time(),
    }


def create_checkpoint(svc: Service, call: Call) -> dict:
    with svc.catalog.transaction() as tx:
        rec = svc.checkpoint(tx)
    return {"Seq": rec["seq"], "SignedSeq": rec["details"]["signed_seq"], "SignedHash": rec["details"]["signed_hash"],
            "Signature": rec["details"]["signature"], "PublicKey": public_pem(svc.signing_key)}
