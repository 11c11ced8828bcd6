"""Accountability rules over fakes: key-bound purposes, signed headers, consent sweeps, review scoping."""

from __future__ import annotations

import pytest

from faceledger.errors import AccessDeniedError, InvalidParameterError
from faceledger.service import Principal
from faceledger.service.context import RequestContext
from faceledger.testing import png_bytes, striped_image

from .test_operations import run

RED = {"Bytes": png_bytes(striped_image((200, 30, 30)))}


def test_only_signed_faceledger_headers_count() -> None:
    ctx = RequestContext.from_transport({
        "faceledger_headers": {"x-faceledger-purpose": "general", "x-faceledger-case": "C-1"},
        "signed_headers": ["host", "x-amz-date", "x-faceledger-purpose"],
    })
    assert ctx.purpose == "general" and ctx.case is None


def test_a_key_bound_to_a_purpose_cannot_search_under_another(service) -> None:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="c")
    bound = Principal("AKIABOUND00000000000", "x", "searcher", defaults={"purpose": "general", "case": "C-7"})
    with pytest.raises(AccessDeniedError, match="bound to purpose"):
        service.dispatch("SearchFacesByImage", {"CollectionId": "c", "Image": RED}, bound,
                         {"faceledger_headers": {"x-faceledger-purpose": "other"}})
    run(service, "IndexFaces", CollectionId="c", Image=RED)
    out = service.dispatch("SearchFacesByImage", {"CollectionId": "c", "Image": RED}, bound, {})
    assert out["Faceledger"]["Purpose"] == "general"
    record = service.ledger.records(operation="SearchFacesByImage", limit=10)[-1]["details"]
    assert record["case"] == "C-7" and record["confirmations_required"] == 1


def test_sweep_finishes_a_withdrawal_cut_short(service) -> None:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="m", Tags={"faceledger:consent-required": "true"})
    consent = run(service, "CreateConsent", Subject="s-1", NoticeText="notice", NoticeVersion="1",
                  Purpose="general")["Consent"]["ConsentId"]
    service.dispatch("IndexFaces", {"CollectionId": "m", "Image": RED, "QualityFilter": "NONE"},
                     Principal("AKIAADMIN00000000000", "x", "admin"),
                     {"faceledger_headers": {"x-faceledger-consent": consent}})
    with service.catalog.transaction() as tx:  # the withdrawal committed, then the process died
        service.catalog.withdraw_consent(tx, consent, 0.0)
    assert len(run(service, "ListFaces", CollectionId="m")["Faces"]) == 1
    assert run(service, "RetentionSweep")["ConsentDeleted"] == 1
    assert run(service, "ListFaces", CollectionId="m")["Faces"] == []


def test_only_an_investigative_purpose_with_a_case_may_lower_the_floor() -> None:
    from faceledger.errors import InvalidParameterError
    from faceledger.service.policy import parse_policy

    def policy(body: str):  # type: ignore[no-untyped-def]
        return parse_policy(f'version = 1\n[purposes.recall]\n{body}\n', "p.toml")

    with pytest.raises(InvalidParameterError, match="max_expected_false must be in .0, 1.; a purpose that needs"):
        policy("max_expected_false = 10")
    with pytest.raises(InvalidParameterError, match="investigative purpose must set case_required"):
        policy("investigative = true\nmax_expected_false = 10")
    with pytest.raises(InvalidParameterError, match=r"\(0, 100\]"):
        policy("investigative = true\ncase_required = true\nmax_expected_false = 1000")
    ok = policy("investigative = true\ncase_required = true\nmax_expected_false = 10").purpose("recall")
    assert ok.investigative and ok.max_expected_false == 10.0


@pytest.mark.parametrize("given", [-1e300, float("inf"), float("nan"), 946_684_799, "2026-01-01", True,
                                   10**400, -(10**400)])
def test_create_consent_rejects_an_implausible_given_at(service, given) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidParameterError, match="GivenAt"):
        run(service, "CreateConsent", Subject="s", NoticeText="n", NoticeVersion="1", Purpose="general",
            GivenAt=given)
    assert service.catalog.list_consents("s") == []


def test_create_consent_allows_clock_skew_but_not_the_future(service) -> None:  # type: ignore[no-untyped-def]
    import time

    skew = service.settings.clock_skew_s
    run(service, "CreateConsent", Subject="s", NoticeText="n", NoticeVersion="1", Purpose="general",
        GivenAt=time.time() + skew / 2)
    with pytest.raises(InvalidParameterError, match="clock skew"):
        run(service, "CreateConsent", Subject="s", NoticeText="n", NoticeVersion="1", Purpose="general",
            GivenAt=time.time() + skew + 60)


def test_create_consent_needs_a_purpose_the_policy_defines(service) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidParameterError, match="not defined by policy"):
        run(service, "CreateConsent", Subject="s", NoticeText="n", NoticeVersion="1", Purpose="access-control")
    assert service.catalog.list_consents("s") == []


INVESTIGATIVE = """version = 1
[purposes.general]
[purposes.recall]
investigative = true
case_required = true
max_expected_false = 10
"""


def test_an_investigative_floor_needs_a_key_created_for_it(service) -> None:  # type: ignore[no-untyped-def]
    from faceledger.service.policy import parse_policy

    service.policy = parse_policy(INVESTIGATIVE, "p.toml")
    run(service, "CreateCollection", CollectionId="c")
    run(service, "IndexFaces", CollectionId="c", Image=RED)
    asked = {"faceledger_headers": {"x-faceledger-purpose": "recall", "x-faceledger-case": "C-1"},
             "signed_headers": ["x-faceledger-purpose", "x-faceledger-case"]}
    for role in ("searcher", "admin"):  # a header alone, whoever sends it, does not lower the floor
        caller = Principal(f"AKIA{role.upper():0<16}"[:20], "x", role)
        with pytest.raises(AccessDeniedError, match="only a key created for it"):
            service.dispatch("SearchFacesByImage", {"CollectionId": "c", "Image": RED}, caller, asked)
    refused = service.ledger.records(operation="SearchFacesByImage", limit=10)[-1]["details"]
    assert refused["refused"] == "purpose" and refused["purpose"] == "recall"
    bound = Principal("AKIARECALL0000000000", "x", "searcher", defaults={"purpose": "recall"})
    out = service.dispatch("SearchFacesByImage", {"CollectionId": "c", "Image": RED}, bound, asked)
    assert out["Faceledger"]["Investigative"] is True and out["Faceledger"]["Purpose"] == "recall"
    record = service.ledger.records(operation="SearchFacesByImage", limit=10)[-1]["details"]
    assert record["investigative"] is True and record["case"] == "C-1"


@pytest.mark.parametrize("name", ['"a\\r\\nSet-Cookie: x=1"', '"调查"', '"with space"', '""'])
def test_purpose_names_are_header_safe(name: str) -> None:
    from faceledger.errors import InvalidParameterError
    from faceledger.service.policy import parse_policy

    with pytest.raises(InvalidParameterError, match="travels in HTTP headers"):
        parse_policy(f"version = 1\n[purposes.{name}]\n", "p.toml")
