"""Client commands through the API of a real server: bulk enrolment (resumable), search, S3 buckets."""

from __future__ import annotations

import json
import shutil

import pytest
from botocore.exceptions import ClientError

from ..conftest import data_path
from .conftest import start_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory):  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("cli")
    bucket = base / "photos"
    bucket.mkdir()
    shutil.copy(data_path("lfw_dev", "Abel_Pacheco", "Abel_Pacheco_0002.jpg"), bucket / "probe.jpg")
    s = start_server(base / "data", workers=1, extra_env={"FACELEDGER_BUCKETS": f"photos={bucket}"})
    yield s
    s.stop()


def test_bulk_index_is_resumable_and_search_finds_the_mate(srv, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "people"
    for person in ("Abel_Pacheco", "Anwar_Ibrahim", "Aaron_Peirsol"):
        (folder / person).mkdir(parents=True)
        shutil.copy(data_path("lfw_dev", person, f"{person}_0001.jpg"), folder / person)
    assert srv.cli("collections", "create", "gallery").returncode == 0
    first = srv.cli("index", "gallery", str(folder), "--external-id-from-name", "--json", "--quiet")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["indexed_faces"] == 3
    again = json.loads(srv.cli("index", "gallery", str(folder), "--json", "--quiet").stdout)
    assert again["skipped"] == 3 and again["indexed_faces"] == 0
    found = srv.cli("search", "gallery", str(data_path("lfw_dev", "Abel_Pacheco", "Abel_Pacheco_0003.jpg")),
                    "--json")
    assert found.returncode == 0, found.stderr
    doc = json.loads(found.stdout)
    assert doc["FaceMatches"][0]["Face"]["ExternalImageId"] == "Abel_Pacheco_0001"
    assert doc["Faceledger"]["GallerySize"] == 3
    # three enrolled faces are too few for cohort normalisation; the response says so (docs/fairness.md)
    assert doc["Faceledger"]["ScoreNormalization"] == "inactive" and doc["Faceledger"]["CohortSize"] == 3
    text = srv.cli("search", "gallery", str(data_path("lfw_dev", "Abel_Pacheco", "Abel_Pacheco_0003.jpg")))
    assert "Leads for human review" in text.stdout
    listed = json.loads(srv.cli("faces", "list", "gallery", "--json").stdout)["Faces"]
    assert len(listed) == 3
    missing = srv.cli("collections", "describe", "nope")
    assert missing.returncode == 6 and "ResourceNotFoundException" in missing.stderr


def test_s3_object_from_a_mapped_bucket(srv) -> None:  # type: ignore[no-untyped-def]
    rek = srv.client()
    out = rek.detect_faces(Image={"S3Object": {"Bucket": "photos", "Name": "probe.jpg"}})
    assert len(out["FaceDetails"]) == 1
    for obj, code in (({"Bucket": "nope", "Name": "probe.jpg"}, "InvalidS3ObjectException"),
                      ({"Bucket": "photos", "Name": "../data/catalog.db"}, "InvalidS3ObjectException"),
                      ({"Bucket": "photos", "Name": "absent.jpg"}, "InvalidS3ObjectException")):
        with pytest.raises(ClientError) as e:
            rek.detect_faces(Image={"S3Object": obj})
        assert e.value.response["Error"]["Code"] == code


def test_client_request_token_idempotency(srv) -> None:  # type: ignore[no-untyped-def]
    rek = srv.client()
    rek.create_collection(CollectionId="idem")
    rek.create_user(CollectionId="idem", UserId="u1", ClientRequestToken="token-0000000001")
    rek.create_user(CollectionId="idem", UserId="u1", ClientRequestToken="token-0000000001")  # replayed
    with pytest.raises(ClientError) as e:
        rek.create_user(CollectionId="idem", UserId="u2", ClientRequestToken="token-0000000001")
    assert e.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert [u["UserId"] for u in rek.list_users(CollectionId="idem")["Users"]] == ["u1"]


def test_users_commands(srv) -> None:  # type: ignore[no-untyped-def]
    assert srv.cli("collections", "create", "team").returncode == 0
    assert srv.cli("users", "create", "team", "ada").returncode == 0
    listed = json.loads(srv.cli("users", "list", "team", "--json").stdout)["Users"]
    assert listed == [{"UserId": "ada", "UserStatus": "CREATED"}]
    assert srv.cli("users", "delete", "team", "ada").returncode == 0
    assert json.loads(srv.cli("users", "list", "team", "--json").stdout)["Users"] == []
    assert srv.cli("users", "delete", "team", "ada").returncode == 6  # ResourceNotFoundException


def test_search_text_shows_the_search_id_and_a_reviewer_key_file_reviews_it(srv, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert srv.cli("collections", "create", "two-person").returncode == 0
    enrol = srv.cli("index", "two-person", str(data_path("lfw_dev", "Abel_Pacheco", "Abel_Pacheco_0001.jpg")),
                    "--json", "--quiet")
    assert enrol.returncode == 0, enrol.stderr
    face_id = json.loads(srv.cli("faces", "list", "two-person", "--json").stdout)["Faces"][0]["FaceId"]
    text = srv.cli("search", "two-person", str(data_path("lfw_dev", "Abel_Pacheco", "Abel_Pacheco_0003.jpg")))
    assert text.returncode == 0, text.stderr
    first = text.stdout.splitlines()[0]
    assert first.startswith("search ") and "candidate(s)" in first
    search_id = first.split()[1]
    assert search_id.isdigit() and f"review confirm|reject {search_id} FACE_ID" in text.stdout
    own = srv.cli("review", "confirm", search_id, face_id, "--reason", "same mole")
    assert own.returncode == 8 and "cannot review" in own.stderr.lower(), own.stderr
    key_file = tmp_path / "reviewer.json"
    made = srv.cli("keys", "create", "--role", "reviewer", "--label", "second pair of eyes", "--save", str(key_file))
    assert made.returncode == 0 and str(key_file) in made.stdout
    assert key_file.stat().st_mode & 0o077 == 0
    again = srv.cli("keys", "create", "--role", "reviewer", "--save", str(key_file))
    assert again.returncode == 3 and "never overwrites" in again.stderr
    done = srv.cli("review", "confirm", search_id, face_id, "--reason", "same mole", "--key-file", str(key_file),
                   "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Candidates"][0]["Status"] == "CONFIRMED"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    bad.chmod(0o600)
    refused = srv.cli("review", "show", search_id, "--key-file", str(bad))
    assert refused.returncode == 3 and "needs AccessKeyId and SecretAccessKey" in refused.stderr


def test_key_file_others_can_read_or_endless_is_refused(srv, tmp_path) -> None:  # type: ignore[no-untyped-def]
    saved = tmp_path / "searcher.json"
    assert srv.cli("keys", "create", "--role", "searcher", "--save", str(saved)).returncode == 0
    assert srv.cli("collections", "list", "--key-file", str(saved)).returncode == 0
    saved.chmod(0o644)  # what `keys create --json > FILE` gives under umask 022
    shared = srv.cli("collections", "list", "--key-file", str(saved))
    assert shared.returncode == 3 and f"chmod 600 {saved}" in shared.stderr, shared.stderr
    endless = srv.cli("collections", "list", "--key-file", "/dev/zero")
    assert endless.returncode == 3 and "not a key file" in endless.stderr, endless.stderr


def test_index_summary_does_not_call_max_faces_a_quality_refusal(srv) -> None:  # type: ignore[no-untyped-def]
    assert srv.cli("collections", "create", "groups").returncode == 0
    photo = str(data_path("group_photos", "face_recognition_two_people.jpg"))
    out = srv.cli("index", "groups", photo, "--max-faces", "1", "--quality-filter", "NONE", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "0 refused by the quality filter, 1 left out by --max-faces" in out.stdout, out.stdout
