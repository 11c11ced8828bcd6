"""A replayed signed write does not act twice; ClientRequestToken is honoured where Rekognition has it.

Real server processes, real models, requests signed by botocore and sent
again byte for byte, as an attacker who captured one (or an SDK retrying after
a lost response) would.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from ..conftest import data_path
from .conftest import start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from api_raw import signed_headers  # noqa: E402


def photo(person: str, n: int = 1) -> bytes:
    return data_path("lfw_dev", person, f"{person}_{n:04d}.jpg").read_bytes()


def signed_index_faces(srv: Any, collection: str, image: bytes) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"CollectionId": collection, "Image": {"Bytes": base64.b64encode(image).decode()},
                       "ExternalImageId": "once"}).encode()
    headers = signed_headers(srv.endpoint + "/", body, "RekognitionService.IndexFaces",
                             key=srv.key, secret=srv.secret)
    headers["Host"] = urlsplit(srv.endpoint).netloc  # signed; kept when replayed to another port
    return body, headers


def send(endpoint: str, body: bytes, headers: dict[str, str]) -> dict:
    req = urllib.request.Request(endpoint + "/", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=60) as response:
        return dict(json.loads(response.read()))


def face_ids(answer: dict) -> list[str]:
    return [r["Face"]["FaceId"] for r in answer["FaceRecords"]]


def test_replayed_index_faces_enrols_once_even_across_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data, workers=1)
    try:
        rek = srv.client()
        rek.create_collection(CollectionId="replay")
        body, headers = signed_index_faces(srv, "replay", photo("Anthony_Fauci"))
        first = send(srv.endpoint, body, headers)
        assert len(face_ids(first)) == 1
        assert send(srv.endpoint, body, headers) == first
        assert rek.describe_collection(CollectionId="replay")["FaceCount"] == 1

        # Concurrent replays of a fresh request: one enrolment between them.
        body2, headers2 = signed_index_faces(srv, "replay", photo("Abel_Pacheco"))
        answers: list[dict] = []
        threads = [threading.Thread(target=lambda: answers.append(send(srv.endpoint, body2, headers2)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(answers) == 4 and all(face_ids(a) == face_ids(answers[0]) for a in answers)
        assert rek.describe_collection(CollectionId="replay")["FaceCount"] == 2
        # A new signature for the same image is a new request: it does enrol.
        assert rek.index_faces(CollectionId="replay", Image={"Bytes": photo("Anthony_Fauci")})["FaceRecords"]
        assert rek.describe_collection(CollectionId="replay")["FaceCount"] == 3
    finally:
        srv.stop()
    again = start_server(data, workers=1)
    try:
        assert send(again.endpoint, body, headers) == first  # remembered durably
        assert again.client().describe_collection(CollectionId="replay")["FaceCount"] == 3
    finally:
        again.stop()


def test_client_request_token_is_honoured_by_the_user_operations(server: Any) -> None:
    rek = server.client()
    rek.create_collection(CollectionId="tokens")
    face = rek.index_faces(CollectionId="tokens", Image={"Bytes": photo("Anwar_Ibrahim")})
    fid = face["FaceRecords"][0]["Face"]["FaceId"]

    def twice(call: Any, **params: Any) -> None:
        first = call(**params)
        second = call(**params)  # a retry with the same token: same answer, no second effect
        first.pop("ResponseMetadata")
        second.pop("ResponseMetadata")
        assert first == second

    twice(rek.create_user, CollectionId="tokens", UserId="u1", ClientRequestToken="create-1")
    twice(rek.associate_faces, CollectionId="tokens", UserId="u1", FaceIds=[fid],
          ClientRequestToken="assoc-1")
    twice(rek.disassociate_faces, CollectionId="tokens", UserId="u1", FaceIds=[fid],
          ClientRequestToken="disassoc-1")
    twice(rek.delete_user, CollectionId="tokens", UserId="u1", ClientRequestToken="delete-1")
    for call, params in ((rek.create_user, {"UserId": "u2"}), (rek.delete_user, {"UserId": "u2"}),
                         (rek.associate_faces, {"UserId": "u2", "FaceIds": [fid]}),
                         (rek.disassociate_faces, {"UserId": "u2", "FaceIds": [fid]})):
        token = {"create_user": "create-1", "delete_user": "delete-1", "associate_faces": "assoc-1",
                 "disassociate_faces": "disassoc-1"}[call.__name__]
        with pytest.raises(ClientError) as exc:
            call(CollectionId="tokens", ClientRequestToken=token, **params)
        assert exc.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"


def test_replayed_signed_write_without_a_token_gets_its_first_answer(server: Any) -> None:
    """CreateUser and the other token operations, sent without a token: the signature stands in."""
    server.client().create_collection(CollectionId="notoken")
    body = json.dumps({"CollectionId": "notoken", "UserId": "once"}).encode()
    headers = signed_headers(server.endpoint + "/", body, "RekognitionService.CreateUser",
                             key=server.key, secret=server.secret)
    assert send(server.endpoint, body, headers) == {}
    assert send(server.endpoint, body, headers) == {}  # not ConflictException: the same request
    with pytest.raises(ClientError) as exc:  # a new request to create it again is refused as before
        server.client().create_user(CollectionId="notoken", UserId="once")
    assert exc.value.response["Error"]["Code"] in ("ConflictException", "ResourceAlreadyExistsException")


def test_replayed_create_consent_records_one_consent(server: Any) -> None:
    """faceledger's own CreateConsent has no token either: a replay returns the consent it made."""
    params = {"Subject": "replay-subject", "NoticeText": "notice", "NoticeVersion": "1", "Purpose": "general"}
    body = json.dumps(params).encode()
    headers = signed_headers(server.endpoint + "/", body, "FaceledgerService.CreateConsent",
                             key=server.key, secret=server.secret)
    first = send(server.endpoint, body, headers)
    assert send(server.endpoint, body, headers) == first
    listing_body = json.dumps({"Subject": "replay-subject"}).encode()
    listing = send(server.endpoint, listing_body, signed_headers(
        server.endpoint + "/", listing_body, "FaceledgerService.ListConsents", key=server.key,
        secret=server.secret))
    assert len(listing["Consents"]) == 1
