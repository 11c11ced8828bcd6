"""Retention expiry and consent withdrawal delete vectors and leave receipts; the report counts them."""

from __future__ import annotations

import json
import sqlite3

import pytest
from botocore.exceptions import ClientError

from ..conftest import data_path
from .conftest import start_server
from .test_accountability import headers


def photo(person: str, n: int) -> bytes:
    return data_path("lfw_dev", person, f"{person}_{n:04d}.jpg").read_bytes()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):  # type: ignore[no-untyped-def]
    s = start_server(tmp_path_factory.mktemp("ret") / "data", workers=1)
    yield s
    s.stop()


def faces(rek, cid: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [f["FaceId"] for f in rek.list_faces(CollectionId=cid)["Faces"]]


def test_consent_required_then_withdrawn(srv, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rek = srv.client()
    rek.create_collection(CollectionId="members", Tags={"faceledger:consent-required": "true"})
    with pytest.raises(ClientError) as e:
        rek.index_faces(CollectionId="members", Image={"Bytes": photo("Abel_Pacheco", 1)})
    assert e.value.response["Error"]["Code"] == "AccessDeniedException" and "consent" in str(e.value)
    notice = tmp_path / "notice.txt"
    notice.write_text("We keep a template of your face to open the gym door. Withdraw at the desk.")
    made = srv.cli("consent", "create", "--subject", "member-0042", "--notice-file", str(notice),
                   "--notice-version", "2026-01", "--purpose", "general", "--json")
    assert made.returncode == 0, made.stderr
    consent_id = json.loads(made.stdout)["Consent"]["ConsentId"]
    listed = json.loads(srv.cli("consent", "list", "--subject", "member-0042", "--json").stdout)["Consents"]
    assert [c["ConsentId"] for c in listed] == [consent_id]
    enrol = headers(srv.client(), consent=consent_id)
    enrol.index_faces(CollectionId="members", Image={"Bytes": photo("Abel_Pacheco", 1)}, ExternalImageId="m42")
    assert len(faces(rek, "members")) == 1
    gone = srv.cli("consent", "withdraw", consent_id, "--json")
    assert gone.returncode == 0 and json.loads(gone.stdout)["DeletedFaces"] == 1
    assert faces(rek, "members") == []
    assert rek.search_faces_by_image(CollectionId="members", Image={"Bytes": photo("Abel_Pacheco", 2)})[
        "FaceMatches"] == []
    with pytest.raises(ClientError):  # a withdrawn consent cannot enrol again
        enrol.index_faces(CollectionId="members", Image={"Bytes": photo("Abel_Pacheco", 1)})
    receipts = json.loads(srv.cli("audit", "show", "--operation", "DeletionReceipt", "--json").stdout)["records"]
    assert receipts[-1]["details"]["reason"] == "consent-withdrawn"


def test_retention_expiry_sweep_schedule_and_report(srv) -> None:  # type: ignore[no-untyped-def]
    rek = srv.client()
    with pytest.raises(ClientError):
        rek.create_collection(CollectionId="bad", Tags={"faceledger:retention-days": "soon"})
    rek.create_collection(CollectionId="visitors", Tags={"faceledger:retention-days": "1"})
    old = rek.index_faces(CollectionId="visitors", Image={"Bytes": photo("Anwar_Ibrahim", 1)})
    new = rek.index_faces(CollectionId="visitors", Image={"Bytes": photo("Aaron_Peirsol", 1)})
    old_id = old["FaceRecords"][0]["Face"]["FaceId"]
    conn = sqlite3.connect(srv.data_dir / "catalog.db")  # age one enrolment by two days
    conn.execute("UPDATE faces SET created_at = created_at - 2 * 86400 WHERE face_id = ?", (old_id,))
    conn.commit()
    conn.close()
    swept = srv.cli("retention", "sweep", "--json")
    assert swept.returncode == 0, swept.stderr
    assert json.loads(swept.stdout)["RetentionDeleted"] == 1
    assert faces(rek, "visitors") == [new["FaceRecords"][0]["Face"]["FaceId"]]
    assert rek.search_faces_by_image(CollectionId="visitors", Image={"Bytes": photo("Anwar_Ibrahim", 2)})[
        "FaceMatches"] == []
    schedule = srv.cli("retention", "schedule")
    assert "visitors" in schedule.stdout and "deleted 1 days after enrolment" in schedule.stdout
    report = json.loads(srv.cli("report", "transparency", "--format", "json").stdout)
    assert report["faces_deleted"]["retention-expired"] == 1
    assert report["faces_deleted"]["consent-withdrawn"] == 1
    assert report["refusals"] == {} or isinstance(report["refusals"], dict)
    md = srv.cli("report", "transparency").stdout
    assert md.startswith("# Transparency report") and "Deletion receipts: 2" in md


def own(srv, operation: str, params: dict) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    """A raw SigV4-signed FaceledgerService.<operation> call: (HTTP status, decoded body)."""
    import urllib.error
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps(params).encode()
    req = AWSRequest(method="POST", url=srv.endpoint + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"FaceledgerService.{operation}"})
    SigV4Auth(Credentials(srv.key, srv.secret), "rekognition", "us-east-1").add_auth(req)
    http = urllib.request.Request(srv.endpoint + "/", data=body, method="POST", headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(http, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.parametrize("bad", [{"GivenAt": -1e300}, {"GivenAt": 1e300}, {"GivenAt": 0},
                                 {"Purpose": "not-in-the-policy"}])
def test_create_consent_rejects_implausible_time_and_unknown_purpose(srv, bad) -> None:  # type: ignore[no-untyped-def]
    subject = f"s-bad-{sorted(bad.items())}"
    params = {"Subject": subject, "NoticeText": "notice", "NoticeVersion": "1", "Purpose": "general", **bad}
    status, body = own(srv, "CreateConsent", params)
    assert status == 400 and body["__type"] == "InvalidParameterException", body
    assert ("GivenAt" if "GivenAt" in bad else "not defined by policy") in body["Message"]
    status, listed = own(srv, "ListConsents", {"Subject": subject})
    assert status == 200 and listed["Consents"] == []  # nothing recorded
    status, ok = own(srv, "CreateConsent", {**params, "Purpose": "general", "GivenAt": 1_700_000_000})
    assert status == 200 and ok["Consent"]["GivenAt"] == 1_700_000_000
    own(srv, "WithdrawConsent", {"ConsentId": ok["Consent"]["ConsentId"]})
