"""A real server with a two-person-review purpose, real enrolled faces, and keys for every role."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from ..conftest import data_path
from ..e2e.conftest import Server, start_server

POLICY = """
version = "console-1"

[purposes.general]
collections = ["*"]

[purposes.investigative-lead]
collections = ["suspects"]
case_required = true
max_expected_false = 0.001
two_person_review = true
"""


def photo(person: str, n: int) -> bytes:
    return data_path("lfw_dev", person, f"{person}_{n:04d}.jpg").read_bytes()


def make_key(srv: Server, role: str, label: str) -> tuple[str, str]:
    out = srv.cli("keys", "create", "--role", role, "--label", label, "--data", str(srv.data_dir), "--json",
                  check=True)
    doc = json.loads(out.stdout)
    return doc["AccessKeyId"], doc["SecretAccessKey"]


@dataclass
class Stage:
    srv: Server
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    search_id: int = 0
    candidates: list[str] = field(default_factory=list)
    # the thumbnail collection: one enrolment per consent, searched once
    consents: dict[str, str] = field(default_factory=dict)  # face id -> consent id
    member_search_id: int = 0

    @property
    def base(self) -> str:
        return self.srv.endpoint + "/console"


def with_headers(client, **values: str):  # type: ignore[no-untyped-def]
    def add(request, **_):  # type: ignore[no-untyped-def]
        for k, v in values.items():
            request.headers[f"X-Faceledger-{k.capitalize()}"] = v
    client.meta.events.register("before-sign.rekognition.*", add)
    return client


def searched(srv: Server, searcher: tuple[str, str], collection: str = "suspects") -> tuple[int, list[str]]:
    """A searcher's 1:N search (two-person purpose on suspects); returns (SearchId, candidate face ids)."""
    rek = srv.client(*searcher)
    seen: dict = {}

    def add(request, **_):  # type: ignore[no-untyped-def]
        if collection == "suspects":
            request.headers["X-Faceledger-Purpose"] = "investigative-lead"
            request.headers["X-Faceledger-Case"] = "CASE-7"

    def keep(http_response, **_):  # type: ignore[no-untyped-def]
        seen.update(json.loads(http_response.content or b"{}").get("Faceledger", {}))

    rek.meta.events.register("before-sign.rekognition.*", add)
    rek.meta.events.register("after-call.rekognition.*", keep)
    out = rek.search_faces_by_image(CollectionId=collection, Image={"Bytes": photo("Abel_Pacheco", 2)})
    return int(seen["SearchId"]), [m["Face"]["FaceId"] for m in out["FaceMatches"]]


@pytest.fixture(scope="module")
def stage(tmp_path_factory):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("console") / "data"
    data.mkdir(parents=True)
    (data / "policy.toml").write_text(POLICY)
    srv = start_server(data, workers=1, extra_env={"FACELEDGER_CONSOLE_SIGNIN_FAILURES": "4"})
    try:
        admin = srv.client()
        admin.create_collection(CollectionId="suspects")
        for person, n in (("Abel_Pacheco", 1), ("Abel_Pacheco", 3), ("Anwar_Ibrahim", 1), ("Aaron_Peirsol", 1)):
            admin.index_faces(CollectionId="suspects", Image={"Bytes": photo(person, n)},
                              ExternalImageId=f"{person}_{n}")
        st = Stage(srv)
        for role, label in (("searcher", "searcher"), ("reviewer", "reviewer-one"), ("reviewer", "reviewer-two"),
                            ("auditor", "auditor"), ("admin", "second-admin")):
            st.keys[label] = make_key(srv, role, label)
        st.search_id, st.candidates = searched(srv, st.keys["searcher"])
        assert len(st.candidates) == 2, st.candidates  # both other photos of Abel Pacheco
        enrol_members(st, data.parent)
        yield st
    finally:
        srv.stop()


def enrol_members(st: Stage, scratch) -> None:  # type: ignore[no-untyped-def]
    """Collection 'members': consent required, thumbnails kept; two faces of one person, one consent each."""
    srv = st.srv
    srv.client().create_collection(CollectionId="members", Tags={
        "faceledger:consent-required": "true", "faceledger:thumbnails": "true",
        "faceledger:thumbnail-retention-days": "7"})
    notice = scratch / "notice.txt"
    notice.write_text("We keep your face to open the door, and a small picture of it for human review.")
    for n in (1, 3):
        made = srv.cli("consent", "create", "--subject", f"member-{n}", "--notice-file", str(notice),
                       "--notice-version", "2026-01", "--purpose", "general", "--json", check=True)
        consent_id = json.loads(made.stdout)["Consent"]["ConsentId"]
        out = with_headers(srv.client(), consent=consent_id).index_faces(
            CollectionId="members", Image={"Bytes": photo("Abel_Pacheco", n)}, ExternalImageId=f"member-{n}")
        st.consents[out["FaceRecords"][0]["Face"]["FaceId"]] = consent_id
    st.member_search_id, found = searched(srv, st.keys["searcher"], "members")
    assert sorted(found) == sorted(st.consents), found
