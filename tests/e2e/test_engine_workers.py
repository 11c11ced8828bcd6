"""Engine workers cannot take the service down: killed, hung, bloated or unloadable workers, through a real server."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from ..conftest import data_path
from .conftest import FACELEDGER, Server, both_stores, free_port, start_server

RETRYABLE = {"InternalServerError", "ThrottlingException"}  # botocore retries both (HTTP 500)


def photos(n: int) -> list[bytes]:
    return [p.read_bytes() for p in sorted(data_path("lfw_dev").glob("A*/*_0001.jpg"))[:n]]


def get(server: Server, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(server.endpoint + path, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def engine_pids(server: Server) -> list[int]:
    """The engine workers: the children of the forkserver that serve started."""
    return sorted(w for c in children(server.proc.pid) for w in children(c))


def wait_for(predicate, timeout: float = 120, step: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def all_alive(server: Server, restarts: int) -> dict | None:
    status, body = get(server, "/health")
    engine = body["engine"]
    ok = status == 200 and engine["alive"] == engine["workers"] and engine["restarts"] >= restarts
    return engine if ok else None


def error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


@pytest.fixture(scope="module")
def srv(tmp_path_factory, store):  # type: ignore[no-untyped-def]
    s = start_server(tmp_path_factory.mktemp("workers") / "data", workers=2, store=store)
    yield s
    s.stop()


@both_stores
def test_killed_worker_mid_request_under_load_is_replaced(srv: Server) -> None:
    images = photos(6)
    status, body = get(srv, "/health")
    assert status == 200 and body["status"] == "ok" and body["engine"]["alive"] == 2
    before = body["engine"]["restarts"]
    failures: list[str] = []
    done = {"n": 0}
    stop = threading.Event()

    def load(i: int) -> None:
        rek = srv.client(retries={"total_max_attempts": 1})  # no SDK retry: the held request shows its error
        while not stop.is_set():
            try:
                rek.detect_faces(Image={"Bytes": images[i % len(images)]})
                done["n"] += 1
            except ClientError as exc:
                failures.append(f"{error_code(exc)} {exc.response['ResponseMetadata']['HTTPStatusCode']}")

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: get(srv, "/health")[1]["engine"]["busy"] == 2)
        victim = engine_pids(srv)[0]
        os.kill(victim, signal.SIGKILL)
        engine = wait_for(lambda: all_alive(srv, before + 1), timeout=180)
        assert victim not in engine_pids(srv)
        assert engine["lost"] >= 1
        failed_at_kill = len(failures)
        served = done["n"]
        wait_for(lambda: done["n"] >= served + 12, timeout=180)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failed_at_kill <= 1 and len(failures) == failed_at_kill, failures  # only the held request failed
    assert all(f in ("InternalServerError 500",) for f in failures), failures
    rek = srv.client()
    assert all(len(rek.detect_faces(Image={"Bytes": img})["FaceDetails"]) == 1 for img in images[:3])


def test_the_sdks_default_retries_hide_a_lost_request(srv: Server) -> None:
    """The held request's error is one boto3 retries by itself: killed mid-request, the call still succeeds."""
    lost = wait_for(lambda: all_alive(srv, 0))["lost"]
    big = _big_image()  # over a second of HOG work: its worker is killed while it holds it
    result: dict = {}

    def call() -> None:
        try:
            result["ok"] = srv.client().detect_faces(Image={"Bytes": big})  # the SDK's default retries
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: get(srv, "/health")[1]["engine"]["busy"] == 1, step=0.01)
    # busy counts a job handed to a worker; one it has not acknowledged yet is re-run on another worker
    # without an error (by design), so give it time to start computing before the kill
    time.sleep(0.3)
    for pid in engine_pids(srv):
        os.kill(pid, signal.SIGKILL)
    caller.join(300)
    assert "error" not in result and "ok" in result, result
    assert result["ok"]["ResponseMetadata"]["RetryAttempts"] >= 1  # it did fail once, and was retried
    assert wait_for(lambda: all_alive(srv, 0))["lost"] >= lost + 1


def test_a_killed_forkserver_is_started_again_and_its_workers_replaced(srv: Server) -> None:
    restarts = wait_for(lambda: all_alive(srv, 0))["restarts"]
    workers = engine_pids(srv)
    forkserver = [c for c in children(srv.proc.pid) if set(children(c)) & set(workers)]
    assert len(forkserver) == 1
    os.kill(forkserver[0], signal.SIGKILL)  # its workers die with it (parent-death signal)
    wait_for(lambda: all_alive(srv, restarts + 2), timeout=180)
    assert not set(workers) & set(engine_pids(srv))
    assert [c for c in children(srv.proc.pid) if children(c)] != forkserver  # a new forkserver forks them
    rek = srv.client(retries={"total_max_attempts": 1})
    assert len(rek.detect_faces(Image={"Bytes": photos(1)[0]})["FaceDetails"]) == 1


def test_ready_is_503_while_every_worker_is_dead(srv: Server) -> None:
    before = wait_for(lambda: all_alive(srv, 0))["restarts"]
    assert get(srv, "/ready")[0] == 200
    for pid in engine_pids(srv):
        os.kill(pid, signal.SIGKILL)
    status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(get(srv, "/ready")), timeout=30,
                            step=0.02)
    assert body["ready"] is False and body["engine"]["alive"] == 0
    health_status, health = get(srv, "/health")
    assert health_status == 200 and health["status"] == "degraded"  # alive: it is restarting them
    # a request sent now waits for a new worker instead of failing
    rek = srv.client(retries={"total_max_attempts": 1})
    assert len(rek.detect_faces(Image={"Bytes": photos(1)[0]})["FaceDetails"]) == 1
    engine = wait_for(lambda: all_alive(srv, before + 2), timeout=180)
    assert engine["restarts"] >= before + 2
    assert wait_for(lambda: get(srv, "/ready")[0] == 200)


def _big_image(tiles: int = 16, quality: int = 80) -> bytes:
    """A mosaic of tiles x tiles faces; 16: 4000x4000, over a second of HOG work, under the 5 MB limit."""
    from PIL import Image

    face = Image.open(io.BytesIO(photos(1)[0])).convert("RGB")
    big = Image.new("RGB", (250 * tiles, 250 * tiles))
    for i in range(tiles):
        for j in range(tiles):
            big.paste(face, (250 * i, 250 * j))
    out = io.BytesIO()
    big.save(out, "JPEG", quality=quality)
    return out.getvalue()


def test_hung_worker_is_replaced_and_runaway_image_is_stopped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = start_server(tmp_path / "data", workers=2, extra_env={"FACELEDGER_ENGINE_TIMEOUT_S": "1"})
    try:
        images = photos(6)
        assert get(s, "/health")[1]["engine"]["timeout_s"] == 1.0
        # a worker stopped while idle never takes its next job: that job runs on the other one
        idle = engine_pids(s)[0]
        os.kill(idle, signal.SIGSTOP)
        rek = s.client(retries={"total_max_attempts": 1})
        answers = []
        threads = [threading.Thread(target=lambda img: answers.append(len(rek.detect_faces(
            Image={"Bytes": img})["FaceDetails"])), args=(img,)) for img in images]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == [1] * 6
        engine = wait_for(lambda: all_alive(s, 1), timeout=180)
        assert engine["timeouts"] == 1 and idle not in engine_pids(s)

        # hung mid-request (alive, holding its job, never answering): only that request fails
        failures: list[str] = []
        done = {"n": 0}
        stop = threading.Event()

        def load(i: int) -> None:
            c = s.client(retries={"total_max_attempts": 1})
            while not stop.is_set():
                try:
                    c.detect_faces(Image={"Bytes": images[i % len(images)]})
                    done["n"] += 1
                except ClientError as exc:
                    failures.append(error_code(exc))

        threads = [threading.Thread(target=load, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: get(s, "/health")[1]["engine"]["busy"] == 2)
            hung = engine_pids(s)[0]
            os.kill(hung, signal.SIGSTOP)
            engine = wait_for(lambda: all_alive(s, 2), timeout=180)
            assert engine["timeouts"] == 2 and hung not in engine_pids(s)
            failed_then, served = len(failures), done["n"]
            wait_for(lambda: done["n"] >= served + 12, timeout=180)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert failed_then <= 1 and failures == ["InternalServerError"] * failed_then, failures

        # runaway work: the image itself takes longer than the budget; not retryable, says why
        with pytest.raises(ClientError) as err:
            rek.detect_faces(Image={"Bytes": _big_image()})
        assert error_code(err.value) == "ImageTooLargeException"
        assert "FACELEDGER_ENGINE_TIMEOUT_S" in err.value.response["Error"]["Message"]
        assert wait_for(lambda: all_alive(s, 3), timeout=180)["runaway"] == 1
        assert len(rek.detect_faces(Image={"Bytes": images[0]})["FaceDetails"]) == 1
    finally:
        s.stop()


def test_worker_memory_is_capped_and_a_grown_worker_recycled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = start_server(tmp_path / "data", workers=1, extra_env={"FACELEDGER_ENGINE_MAX_MEMORY_MB": "600"})
    try:
        rek = s.client(retries={"total_max_attempts": 1})
        worker = engine_pids(s)
        # 6000 x 6000 pixels (under the 40 MP decode guard) needs about 800 MiB of address space
        with pytest.raises(ClientError) as err:
            rek.detect_faces(Image={"Bytes": _big_image(24, quality=60)})
        assert error_code(err.value) == "ImageTooLargeException"
        assert "FACELEDGER_ENGINE_MAX_MEMORY_MB" in err.value.response["Error"]["Message"]
        assert len(rek.detect_faces(Image={"Bytes": photos(1)[0]})["FaceDetails"]) == 1
        engine = wait_for(lambda: all_alive(s, 1), timeout=180)
        # replaced before its next job (native code is not safe after a failed allocation); no request lost
        assert (engine["lost"], engine["recycled"]) == (0, 1) and engine_pids(s) != worker
    finally:
        s.stop()
    s = start_server(tmp_path / "data", workers=1, extra_env={"FACELEDGER_ENGINE_MAX_RSS_MB": "50"})
    try:
        rek = s.client(retries={"total_max_attempts": 1})
        first = engine_pids(s)
        for img in photos(2):  # a fresh worker is ~250 MiB: each job recycles it
            assert len(rek.detect_faces(Image={"Bytes": img})["FaceDetails"]) == 1
        engine = wait_for(lambda: all_alive(s, 2), timeout=180)
        assert engine["recycled"] == 2 and engine["lost"] == 0
        assert not set(first) & set(engine_pids(s))
    finally:
        s.stop()


def test_a_memory_cap_too_small_for_the_models_stops_serve_with_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "FACELEDGER_ENGINE_MAX_MEMORY_MB": "200"}
    out = subprocess.run([*FACELEDGER, "serve", "--port", "0", "--data", str(tmp_path / "data"), "--workers", "1"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 3 and "FACELEDGER_ENGINE_MAX_MEMORY_MB" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def model_copy(folder: Path) -> Path:
    """The model files in ``folder`` (links), the small landmark model a real copy to corrupt."""
    from faceledger.engine.registry import models_dir

    folder.mkdir()
    for f in models_dir().glob("*.dat"):
        (folder / f.name).symlink_to(f)
    landmarks = folder / "shape_predictor_5_face_landmarks.dat"
    good = landmarks.read_bytes()
    landmarks.unlink()
    landmarks.write_bytes(good)
    return landmarks


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_model_file_exits_10_with_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    models = tmp_path / "models"
    flip_byte(model_copy(models))
    env = {**os.environ, "FACELEDGER_MODELS_DIR": str(models)}
    out = subprocess.run([*FACELEDGER, "serve", "--port", "0", "--data", str(tmp_path / "data"), "--workers", "1"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 10, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "shape_predictor_5_face_landmarks.dat" in out.stderr and "SHA-256" in out.stderr


def test_serve_outlives_the_shell_that_started_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    log, pidfile = tmp_path / "serve.log", tmp_path / "serve.pid"
    cmd = " ".join([*FACELEDGER, "serve", "--port", str(port), "--data", str(tmp_path / "data"), "--workers", "1"])
    # bash stays until serve has started (and imported everything), then exits under it
    script = (f"nohup {cmd} > {log} 2>&1 & echo $! > {pidfile}; "
              f"for i in $(seq 1200); do grep -q 'serving on' {log} && exit 0; sleep 0.1; done; exit 1")
    shell = subprocess.Popen(["bash", "-c", script], start_new_session=True)  # its own process group
    try:
        assert shell.wait(timeout=180) == 0, log.read_text()
        pid = int(pidfile.read_text())
        time.sleep(1.0)
        os.kill(pid, 0)  # still there after bash exited (raises ProcessLookupError otherwise)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as r:
            assert r.status == 200
        workers = [w for c in children(pid) for w in children(c)]
        assert len(workers) == 1
        os.kill(pid, signal.SIGKILL)  # the workers (and their forkserver) must die with it
        wait_for(lambda: all(gone(w) for w in workers), timeout=30)
    finally:
        try:
            os.killpg(shell.pid, signal.SIGKILL)  # serve and all it started share bash's group
        except ProcessLookupError:
            pass


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_bad_engine_budget_stops_serve_with_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "FACELEDGER_ENGINE_TIMEOUT_S": "0"}
    out = subprocess.run([*FACELEDGER, "serve", "--port", "0", "--data", str(tmp_path / "data"), "--workers", "1"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 3 and "FACELEDGER_ENGINE_TIMEOUT_S" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_workers_that_cannot_restart_fail_health_then_recover(tmp_path) -> None:  # type: ignore[no-untyped-def]
    landmarks = model_copy(tmp_path / "models")
    s = start_server(tmp_path / "data", workers=1, extra_env={"FACELEDGER_MODELS_DIR": str(tmp_path / "models")})
    try:
        flip_byte(landmarks)  # changed on disk after start: a new worker cannot load it
        os.kill(engine_pids(s)[0], signal.SIGKILL)
        status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(get(s, "/health")), timeout=60)
        assert body["status"] == "failing" and body["engine"]["failed"] == 1
        assert get(s, "/ready")[0] == 503
        # it keeps trying (with back-off) and stays failing meanwhile: no 200 while an attempt runs
        deadline = time.time() + 10
        while time.time() < deadline:
            status, body = get(s, "/health")
            assert (status, body["status"]) == (503, "failing"), body
            time.sleep(0.05)
        rek = s.client(retries={"total_max_attempts": 1})
        with pytest.raises(ClientError) as err:
            rek.detect_faces(Image={"Bytes": photos(1)[0]})
        assert error_code(err.value) == "ThrottlingException"  # retryable, at once: nothing hangs
        assert "SHA-256" in s.log.read_text()  # the log says why
        flip_byte(landmarks)  # repaired: the next restart attempt succeeds
        wait_for(lambda: all_alive(s, 1), timeout=120)
        assert len(rek.detect_faces(Image={"Bytes": photos(1)[0]})["FaceDetails"]) == 1
    finally:
        s.stop()
