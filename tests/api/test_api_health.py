"""GET /health and /ready report the engine state the service gives, and nothing else decides them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from api_fakes import FakeService, serve

from faceledger.api import create_app


class EngineFake(FakeService):
    def __init__(self) -> None:
        super().__init__()
        self.engine: dict[str, Any] = {}

    def engine_state(self) -> dict[str, Any]:
        return dict(self.engine)


def fetch(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_health_and_ready_follow_the_engine_state() -> None:
    svc = EngineFake()
    with serve(create_app(svc, max_inflight=2, max_queue=2)) as url:
        svc.engine = {"status": "ok", "workers": 2, "alive": 2, "restarts": 0, "ready": True, "live": True}
        assert fetch(url + "/health") == (200, {"status": "ok", "engine": svc.engine})
        assert fetch(url + "/ready")[0] == 200
        svc.engine = {"status": "degraded", "workers": 2, "alive": 0, "restarts": 2, "ready": False, "live": True}
        status, body = fetch(url + "/health")
        assert (status, body["status"], body["engine"]["restarts"]) == (200, "degraded", 2)
        assert fetch(url + "/ready") == (503, {"ready": False, "engine": svc.engine})
        svc.engine = {"status": "failing", "workers": 2, "alive": 0, "restarts": 9, "ready": False, "live": False}
        assert fetch(url + "/health")[0] == 503 and fetch(url + "/health")[1]["status"] == "failing"


def test_a_service_without_engine_state_is_healthy_and_ready() -> None:
    with serve(create_app(FakeService(), max_inflight=2, max_queue=2)) as url:
        assert fetch(url + "/health") == (200, {"status": "ok"})
        assert fetch(url + "/ready") == (200, {"ready": True})
