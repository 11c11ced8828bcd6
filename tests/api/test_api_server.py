"""End to end: real boto3, the AWS CLI and raw HTTP against a real uvicorn server."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from api_fakes import ACCESS_KEY, REVOKED_KEY, SECRET, FakeService, serve
from api_raw import call, make_client, post, signed_headers
from botocore.exceptions import ClientError

from faceledger.api import check_response, create_app

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_successful_calls_round_trip_through_boto3(client: Any, service: FakeService) -> None:
    created = client.create_collection(CollectionId="e2e-ok")
    assert created["StatusCode"] == 200
    assert created["CollectionArn"].endswith("collection/e2e-ok")
    request_id = created["ResponseMetadata"]["RequestId"]
    assert len(request_id) == 36
    listed = client.list_collections()
    assert "e2e-ok" in listed["CollectionIds"]
    assert "NextToken" not in listed  # None members are omitted on the wire
    operation, params, context = service.calls[0]
    assert (operation, params) == ("CreateCollection", {"CollectionId": "e2e-ok"})
    assert context["request_id"] == request_id
    assert context["region"] == "us-east-1"
    assert context["remote"] == "127.0.0.1"
    assert context["invocation_id"]
    assert {"host", "x-amz-date", "x-amz-target", "content-type"} <= set(context["signed_headers"])


def test_detect_faces_decodes_blob_and_omits_none(client: Any, service: FakeService) -> None:
    answer = client.detect_faces(Image={"Bytes": b"\xff\xd8not-really-a-jpeg"}, Attributes=["ALL"])
    face = answer["FaceDetails"][0]
    assert face["BoundingBox"]["Width"] == 0.25
    assert "AgeRange" not in face and "OrientationCorrection" not in answer
    _, params, _ = service.calls[-1]
    assert params["Image"]["Bytes"] == b"\xff\xd8not-really-a-jpeg"
    check_response("DetectFaces", {k: v for k, v in answer.items() if k != "ResponseMetadata"})


def test_purpose_headers_reach_the_service_context(server_url: str, service: FakeService) -> None:
    client = make_client(server_url)

    def add_headers(request: Any, **_: Any) -> None:
        request.headers["x-faceledger-purpose"] = "missing-person"
        request.headers["X-Faceledger-Case"] = "CASE-42"

    client.meta.events.register("before-sign.rekognition.ListCollections", add_headers)
    client.list_collections()
    context = service.calls[-1][2]
    assert (context["purpose"], context["case"]) == ("missing-person", "CASE-42")
    assert "x-faceledger-purpose" in context["signed_headers"]


def test_service_error_becomes_client_error(client: Any) -> None:
    client.create_collection(CollectionId="twice")
    with pytest.raises(ClientError) as exc:
        client.create_collection(CollectionId="twice")
    assert error_code(exc) == "ResourceAlreadyExistsException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "twice" in exc.value.response["Error"]["Message"]
    assert isinstance(exc.value, client.exceptions.ResourceAlreadyExistsException)


def test_unexpected_exception_is_a_generic_500(client: Any) -> None:
    with pytest.raises(ClientError) as exc:
        client.delete_collection(CollectionId="boom")
    assert error_code(exc) == "InternalServerError"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "secret internal detail" not in exc.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [
        (ACCESS_KEY, "wrong-secret", "InvalidSignatureException"),
        ("AKIDUNKNOWN000000000", SECRET, "UnrecognizedClientException"),
        (REVOKED_KEY, SECRET, "UnrecognizedClientException"),
    ],
)
def test_authentication_failures(server_url: str, key: str, secret: str, code: str) -> None:
    with pytest.raises(ClientError) as exc:
        make_client(server_url, key, secret).list_collections()
    assert error_code(exc) == code


def test_missing_authentication(server_url: str) -> None:
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "RekognitionService.ListCollections",
    }
    status, hdrs, body = post(server_url + "/", b"{}", headers)
    assert status == 403
    assert body["__type"] == body["Code"] == "MissingAuthenticationTokenException"
    assert hdrs["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert hdrs["content-type"] == "application/x-amz-json-1.1"
    assert hdrs["x-amzn-requestid"]


def test_oversize_body_is_image_too_large(client: Any) -> None:
    with pytest.raises(ClientError) as exc:
        client.detect_faces(Image={"Bytes": b"\0" * 6_000_000})  # 8 MB once base64-encoded
    assert error_code(exc) == "ImageTooLargeException"


def test_image_over_5mb_but_under_body_cap(client: Any) -> None:
    with pytest.raises(ClientError) as exc:
        client.detect_faces(Image={"Bytes": b"\0" * (5 * 1024 * 1024 + 1)})
    assert error_code(exc) == "ImageTooLargeException"


@pytest.mark.parametrize(
    ("operation", "params", "fragment"),
    [
        ("DetectFaces", {"Image": {"Bytes": "AAAA"}, "Attributes": ["WINGS"]}, "enum value set"),
        ("CreateCollection", {"CollectionId": "has space"}, "regular expression"),
        ("CreateCollection", {}, "must not be null"),
        ("CreateCollection", {"CollectionId": "x" * 256}, "less than or equal to 255"),
        ("CreateCollection", {"CollectionId": "ok", "Extra": 1}, "Unknown member 'Extra'"),
        ("SearchFaces", {"CollectionId": "c", "FaceId": "not-a-uuid"}, "regular expression"),
        ("DetectFaces", {"Image": {"Bytes": "***"}}, "base64"),
        ("DetectFaces", {"Image": {}}, "Exactly one of"),
        ("ListCollections", b"{not json", "not valid JSON"),
        # a lone surrogate escape used to reach the error encoder and give a plain-text 500
        ("CreateCollection", b'{"CollectionId": "a\\ud800"}', "lone surrogate"),
        ("CreateCollection", b'{"CollectionId": "ok", "Tags": {"\\uDFFF": "v"}}', "lone surrogate"),
    ],
)
def test_invalid_parameters_reach_the_server(
    server_url: str, operation: str, params: Any, fragment: str
) -> None:
    status, hdrs, body = call(server_url, operation, params)
    assert status == 400
    assert body["__type"] == hdrs["x-amzn-errortype"] == "InvalidParameterException"
    assert fragment in body["Message"]


def test_unknown_operation_and_content_type(server_url: str) -> None:
    status, _, body = call(server_url, "RekognitionService.DetectLabels", {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, _, body = call(server_url, "Dynamo_20120810.ListTables", {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, _, body = call(server_url, "ListCollections", {}, content_type="text/plain")
    assert (status, body["__type"]) == (400, "InvalidParameterException")


def test_health_is_unauthenticated(server_url: str) -> None:
    with urllib.request.urlopen(server_url + "/health", timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "ok"}


def test_throttling_when_pool_is_saturated() -> None:
    service = FakeService(gate=threading.Event())
    app = create_app(service, max_inflight=1, max_queue=1)
    with serve(app) as url:
        client = make_client(url)
        answers: list[Any] = []
        workers = [threading.Thread(target=lambda: answers.append(client.list_collections()))]
        workers.append(threading.Thread(target=lambda: answers.append(client.list_collections())))
        workers[0].start()
        wait_for(lambda: service.running == 1)
        workers[1].start()
        wait_for(lambda: app.state.pool.admitted == 2)  # one running, one queued
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(ClientError) as exc:
                client.list_collections()
            assert error_code(exc) == "ThrottlingException"
            assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
            assert time.monotonic() - started < 2  # refused at once, not queued
        assert service.gate is not None
        service.gate.set()
        for worker in workers:
            worker.join(timeout=10)
    assert len(answers) == 2 and service.max_running == 1
    assert app.state.pool.admitted == 0


def wait_for(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize("chunked", [False, True])
def test_body_cap_with_and_without_content_length(chunked: bool) -> None:
    with serve(create_app(FakeService(), max_body_bytes=1000, max_inflight=1, max_queue=0)) as url:
        connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
        body = b'{"CollectionId":"' + b"x" * 5000 + b'"}'
        # Signed (the key and date are checked before the body); the cap comes before the signature.
        headers = signed_headers(url + "/", body, "RekognitionService.CreateCollection")
        if chunked:
            headers.pop("Content-Length", None)
            connection.request(
                "POST",
                "/",
                body=iter([body[:700], body[700:]]),
                headers=headers,
                encode_chunked=True,
            )
        else:
            connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        payload = json.loads(response.read())
        connection.close()
    assert response.status == 400
    assert payload["__type"] == "ImageTooLargeException"


def _aws_cli() -> str | None:
    local = Path(sys.executable).parent / "aws"
    return str(local) if local.exists() else shutil.which("aws")


@pytest.mark.skipif(_aws_cli() is None, reason="the AWS CLI is not installed")
def test_aws_cli(server_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_MAX_ATTEMPTS="1",
    )
    base = [str(_aws_cli()), "rekognition", "--endpoint-url", server_url, "--region", "us-east-1"]
    ok = subprocess.run(
        [*base[:2], "list-collections", *base[2:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    assert "CollectionIds" in json.loads(ok.stdout)
    bad = subprocess.run(
        [*base[:2], "describe-collection", "--collection-id", "nope", *base[2:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 255
    assert "ResourceNotFoundException" in bad.stderr


def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    marker = tmp_path / "dispatching"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(SRC)])}
    command = [sys.executable, "-m", "api_fakes", str(port), "0.5", str(marker)]
    proc = subprocess.Popen(command, env=env, cwd=HERE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url) or proc.poll() is not None, timeout=15)
        result: dict[str, Any] = {}
        client = make_client(url)
        worker = threading.Thread(target=lambda: result.update(answer=client.list_collections()))
        worker.start()
        wait_for(marker.exists)  # the request is now inside dispatch
        proc.send_signal(signal.SIGTERM)
        worker.join(timeout=10)
        assert result["answer"]["ResponseMetadata"]["HTTPStatusCode"] == 200
        # uvicorn re-raises the captured signal once shutdown is complete.
        assert proc.wait(timeout=10) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _healthy(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/health", timeout=1).close()
        return True
    except OSError:
        return False
