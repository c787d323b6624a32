"""GET /health/ready, through HTTP on real Daphne processes: 503 naming what is missing (migrations,
the local model) until the node can take turns, then 200; and `make run`'s ready line only then."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import pytest

from tests import daphne
from tests.net import free_port

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def _ready(server) -> httpx2.Response:
    return httpx2.get(f"{server.url}/health/ready", timeout=30)


def _wait_for(condition, seconds=60.0, what="the condition"):
    deadline = time.monotonic() + seconds  # a bound on waiting, not a latency check
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def test_a_ready_node_answers_200_and_health_stays_the_liveness_check(tmp_path, upstream):
    server = daphne.DaphneServer(tmp_path, OPENAI_BASE_URL=upstream.base_url).start()
    try:
        answer = _ready(server)
        assert (answer.status_code, answer.json()) == (200, {"status": "ready"})
        assert httpx2.head(f"{server.url}/health/ready", timeout=30).status_code == 200
        refused = httpx2.post(f"{server.url}/health/ready", timeout=30)
        assert refused.status_code == 405 and "error" in refused.json()
        assert httpx2.get(f"{server.url}/health", timeout=30).json() == {"status": "ok"}
    finally:
        server.stop()


def test_a_database_without_migrations_is_not_ready_until_they_are_applied(tmp_path, upstream):
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    server = daphne.DaphneServer(tmp_path, OPENAI_BASE_URL=upstream.base_url, DATABASE_URL=fresh).start()
    try:
        answer = _ready(server)
        assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0
        body = answer.json()
        assert body["status"] == "unavailable" and list(body["missing"]) == ["migrations"]
        assert "manage.py migrate" in body["missing"]["migrations"]
        assert httpx2.get(f"{server.url}/health", timeout=30).status_code == 200  # alive all the same

        server.manage("migrate", "--noinput", "-v", "0")
        assert _ready(server).status_code == 200
    finally:
        server.stop()


@pytest.mark.local_model
def test_with_the_local_model_a_node_is_ready_only_once_the_model_answers(tmp_path):
    model_socket = tmp_path / "model.sock"
    env = {"TRON_LLM": "local", "TRON_LOCAL_MODEL_SOCKET": str(model_socket), "TRON_LOCAL_MODEL_THREADS": "1"}
    server = daphne.DaphneServer(tmp_path, **env).start()
    model = None
    try:
        answer = _ready(server)
        assert answer.status_code == 503
        missing = answer.json()["missing"]
        assert list(missing) == ["model"] and "local model process does not answer" in missing["model"]

        model = subprocess.Popen(
            [sys.executable, "manage.py", "serve_model", "--socket", str(model_socket)],
            cwd=ROOT,
            env=server.env,
        )
        _wait_for(lambda: _ready(server).status_code == 200, what="the model to answer /health/ready")

        model.send_signal(signal.SIGTERM)  # gone again: no longer ready (the good answer held briefly)
        model.wait(timeout=30)
        _wait_for(lambda: _ready(server).status_code == 503, seconds=30, what="readiness to notice")
        assert "model" in _ready(server).json()["missing"]
    finally:
        if model is not None and model.poll() is None:
            model.kill()
        server.stop()


@pytest.mark.local_model
def test_make_run_prints_its_ready_line_only_once_a_chat_can_be_answered(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRON_", "DJANGO_", "REDIS_", "OPENAI_"))}
    port = free_port()
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'tron.sqlite3'}",
        TRON_DATA_DIR=str(tmp_path),
        TRON_PORT=str(port),
        TRON_WEB_PROCESSES="1",
        TRON_LOCAL_MODEL_THREADS="1",
    )
    for command in (["migrate", "--noinput", "-v", "0"], ["load_team"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )
    serve = subprocess.Popen(
        [sys.executable, "-m", "tron_site.serve"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in serve.stdout], daemon=True).start()
    try:
        printed = []
        while not printed or not printed[-1].startswith("Tron: http://"):
            printed.append(lines.get(timeout=120))  # a bound on start-up, not a latency check
        assert printed[-1].startswith(f"Tron: http://127.0.0.1:{port}/"), printed
        # The moment it is printed: ready, and the README's first chat is answered.
        assert httpx2.get(f"{base}/health/ready", timeout=30).status_code == 200
        body = {"model": "tony", "messages": [{"role": "user", "content": "Hi!"}], "max_tokens": 4}
        answer = httpx2.post(f"{base}/v1/chat/completions", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]
        waiting = [line for line in printed[:-1] if line.startswith("Tron:")]
        assert waiting and all(line.startswith("Tron: not ready yet: ") for line in waiting)
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            assert serve.wait(timeout=60) == 0
        finally:
            if serve.poll() is None:
                serve.kill()
