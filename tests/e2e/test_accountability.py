"""Accountability through the real server: purposes, floors, quality, halt, ledger, consent, review."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess

import pytest
from botocore.exceptions import ClientError
from PIL import Image, ImageEnhance

from ..conftest import data_path
from .conftest import start_server

POLICY = """
version = "test-3"

[purposes.general]
collections = ["*"]

[purposes.investigative-lead]
collections = ["suspects"]
case_required = true
max_candidates = 5
max_expected_false = 0.0001
two_person_review = true
"""


def photo(person: str, n: int) -> bytes:
    return data_path("lfw_dev", person, f"{person}_{n:04d}.jpg").read_bytes()


def headers(client, **values: str):  # type: ignore[no-untyped-def]
    """The four-line boto3 event hook that adds purpose and case headers (docs/accountability.md)."""
    def add(request, **_):  # type: ignore[no-untyped-def]
        for k, v in values.items():
            request.headers[f"X-Faceledger-{k.capitalize()}"] = v
    client.meta.events.register("before-sign.rekognition.*", add)
    return client


def extra(client) -> dict:  # type: ignore[no-untyped-def]
    """Capture faceledger's extra `Faceledger` response member (boto3 drops unknown members)."""
    seen: dict = {}

    def keep(http_response, **_):  # type: ignore[no-untyped-def]
        seen.clear()
        seen.update(json.loads(http_response.content or b"{}").get("Faceledger", {}))
    client.meta.events.register("after-call.rekognition.*", keep)
    return seen


@pytest.fixture(scope="module")
def acct(tmp_path_factory):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("acct") / "data"
    data.mkdir(parents=True)
    (data / "policy.toml").write_text(POLICY)
    srv = start_server(data, workers=1, extra_env={"FACELEDGER_CHECKPOINT_EVERY": "5"})
    rek = srv.client()
    rek.create_collection(CollectionId="suspects")
    for person in ("Abel_Pacheco", "Anwar_Ibrahim", "Aaron_Peirsol"):
        rek.index_faces(CollectionId="suspects", Image={"Bytes": photo(person, 1)}, ExternalImageId=person)
    yield srv
    srv.stop()


def key(srv, role: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    out = srv.cli("keys", "create", "--role", role, "--data", str(srv.data_dir), "--json", check=True)
    doc = json.loads(out.stdout)
    return doc["AccessKeyId"], doc["SecretAccessKey"]


def test_purpose_and_case_are_enforced(acct) -> None:  # type: ignore[no-untyped-def]
    probe = {"Bytes": photo("Abel_Pacheco", 2)}
    # 'general' may search everything; 'investigative-lead' needs a case reference
    assert acct.client().search_faces_by_image(CollectionId="suspects", Image=probe)["FaceMatches"]
    no_case = headers(acct.client(), purpose="investigative-lead")
    with pytest.raises(ClientError) as e:
        no_case.search_faces_by_image(CollectionId="suspects", Image=probe)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException" and "case" in str(e.value)
    unknown = headers(acct.client(), purpose="curiosity")
    with pytest.raises(ClientError) as e:
        unknown.search_faces_by_image(CollectionId="suspects", Image=probe)
    assert "not in the policy" in str(e.value)
    ok = headers(acct.client(), purpose="investigative-lead", case="CASE-42")
    seen = extra(ok)
    out = ok.search_faces_by_image(CollectionId="suspects", Image=probe, FaceMatchThreshold=1)
    assert out["FaceMatches"][0]["Face"]["ExternalImageId"] == "Abel_Pacheco"
    assert seen["ThresholdRaised"] is True and seen["Purpose"] == "investigative-lead"
    assert seen["GallerySize"] == 3 and seen["ExpectedFalseCandidates"] <= 1e-4 + 1e-12
    shown = json.loads(acct.cli("audit", "show", "--operation", "SearchFacesByImage", "--json").stdout)["records"]
    last = shown[-1]["details"]
    assert last["case"] == "CASE-42" and last["threshold_requested"] == 1 and last["threshold_raised"] is True
    assert any(r["details"].get("refused") == "case" for r in shown)


def test_low_quality_probe_is_refused(acct) -> None:  # type: ignore[no-untyped-def]
    dark = ImageEnhance.Brightness(Image.open(io.BytesIO(photo("Abel_Pacheco", 2)))).enhance(0.25)
    buf = io.BytesIO()
    dark.save(buf, format="JPEG")
    with pytest.raises(ClientError) as e:
        acct.client().search_faces_by_image(CollectionId="suspects", Image={"Bytes": buf.getvalue()})
    assert e.value.response["Error"]["Code"] == "InvalidParameterException" and "quality" in str(e.value)


def test_halt_needs_a_second_admin_to_resume(acct) -> None:  # type: ignore[no-untyped-def]
    assert acct.cli("halt", "--reason", "audit finding 7").returncode == 0
    with pytest.raises(ClientError) as e:
        acct.client().search_faces_by_image(CollectionId="suspects", Image={"Bytes": photo("Abel_Pacheco", 2)})
    assert e.value.response["Error"]["Code"] == "AccessDeniedException" and "halted" in str(e.value)
    same = acct.cli("resume", "--reason", "fixed")
    assert same.returncode == 8 and "cannot resume" in same.stderr
    halted = json.loads(acct.cli("status", "--json").stdout)
    assert halted["Halted"] is True and halted["Halt"]["reason"] == "audit finding 7"
    other = acct.cli("resume", "--reason", "reviewed", key=key(acct, "admin"))
    assert other.returncode == 0, other.stderr
    assert json.loads(acct.cli("status", "--json").stdout)["Halted"] is False
    keys = json.loads(acct.cli("keys", "list", "--json").stdout)["Keys"]
    assert {k["role"] for k in keys} >= {"admin"} and all("secret" not in k for k in keys)
    assert acct.client().search_faces_by_image(CollectionId="suspects", Image={"Bytes": photo("Abel_Pacheco", 2)})


def test_two_person_confirmation(acct) -> None:  # type: ignore[no-untyped-def]
    c = headers(acct.client(), purpose="investigative-lead", case="CASE-9")
    seen = extra(c)
    out = c.search_faces_by_image(CollectionId="suspects", Image={"Bytes": photo("Abel_Pacheco", 3)})
    face_id, search_id = out["FaceMatches"][0]["Face"]["FaceId"], seen["SearchId"]
    reviewers = [key(acct, "reviewer") for _ in range(2)]

    def decide(k: tuple[str, str], decision: str) -> subprocess.CompletedProcess:
        return acct.cli("review", decision.lower(), str(search_id), face_id, "--reason", "same scar", "--json", key=k)
    first = decide(reviewers[0], "CONFIRM")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["Candidates"][0]["Status"] == "PENDING"
    again = decide(reviewers[0], "CONFIRM")
    assert again.returncode == 12  # one reviewer cannot confirm twice
    second = decide(reviewers[1], "CONFIRM")
    assert json.loads(second.stdout)["Candidates"][0]["Status"] == "CONFIRMED"
    own = acct.cli("review", "confirm", str(search_id), face_id, "--reason", "x")
    assert own.returncode == 8  # the searching key cannot review its own search


def _tamper(db: str, sql: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER IF EXISTS ledger_no_update")
    conn.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_ledger_tampering_is_detected(acct, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert acct.cli("audit", "checkpoint").returncode == 0
    ok = json.loads(acct.cli("audit", "verify", "--json").stdout)
    assert ok["ok"] and ok["checkpoints"] >= 1
    export = tmp_path / "ledger.jsonl"
    assert acct.cli("audit", "export", str(export)).returncode == 0
    pub = tmp_path / "pub.pem"
    pub.write_text(acct.cli("audit", "public-key").stdout)
    good = acct.cli("audit", "verify", "--file", str(export), "--public-key", str(pub), "--json")
    assert good.returncode == 0, good.stdout
    records = [json.loads(line) for line in export.read_text().splitlines()]

    def write(recs: list[dict], name: str) -> str:
        p = tmp_path / name
        p.write_text("".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in recs))
        return str(p)

    def verdict(path: str) -> dict:
        out = acct.cli("audit", "verify", "--file", path, "--public-key", str(pub), "--json")
        assert out.returncode == 13
        return json.loads(out.stdout)

    edited = [dict(r) for r in records]
    edited[3] = {**edited[3], "details": {**edited[3]["details"], "purpose": "other"}}
    assert verdict(write(edited, "edited.jsonl"))["first_bad_seq"] == 4
    assert verdict(write(records[:5] + records[6:], "deleted.jsonl"))["first_bad_seq"] == 6
    assert verdict(write(records[:6] + [records[7], records[6]] + records[8:], "swapped.jsonl"))["first_bad_seq"] == 7
    # a forger with the file rewrites history and recomputes every hash: only the signatures catch it
    from faceledger.store.ledger import record_hash

    forged, prev = [], "0" * 64
    for r in records:
        r = {**r, "prev_hash": prev}
        if r["seq"] == 2:
            r["details"] = {**r["details"], "external_image_id": "someone-else"}
        r["hash"] = record_hash(r)
        prev = r["hash"]
        forged.append(r)
    caught = verdict(write(forged, "forged.jsonl"))
    assert "signed a different hash" in caught["reason"] or "signature" in caught["reason"]
    # and the live database: an edited record is named
    abel = next(r["seq"] for r in records if "Abel" in json.dumps(r["details"]))
    _tamper(str(acct.data_dir / "catalog.db"), "UPDATE ledger SET details = replace(details, 'Abel', 'Abe') "
            f"WHERE seq = {abel}")
    live = acct.cli("audit", "verify", "--json")
    assert live.returncode == 13 and json.loads(live.stdout)["first_bad_seq"] == abel
