"""`make run`'s processes with the local model, as a user runs them (`python -m tron_site.serve`): the
model process killed mid-answer costs that answer and a few seconds of 503s, never the server."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from tests.net import free_port

pytestmark = pytest.mark.local_model

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> dict[int, str]:
    """The supervisor's children: pid → command line."""
    listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = {}
    for child in map(int, listed):
        with contextlib.suppress(FileNotFoundError):  # gone since
            found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return found


def _pids(pid: int, marker: str) -> list[int]:
    return [child for child, command in _children(pid).items() if marker in command]


def _gone(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def _wait_for(condition, seconds=60.0, what="the condition"):
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _chat(base: str, **body) -> httpx2.Response:
    body = {"model": "tony", "messages": [{"role": "user", "content": "Hi!"}], "max_tokens": 4, **body}
    return httpx2.post(f"{base}/v1/chat/completions", json=body, timeout=60)


@pytest.fixture
def tron(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRON_", "DJANGO_", "REDIS_", "OPENAI_"))}
    port = free_port()
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'tron.sqlite3'}",
        TRON_DATA_DIR=str(tmp_path),
        TRON_PORT=str(port),
        TRON_WEB_PROCESSES="2",
        TRON_LOCAL_MODEL_THREADS="1",
        # The waits below ask every 50 ms while the model restarts: no limit per minute for this address.
        TRON_CALLER_REQUESTS_PER_MINUTE="0",
    )
    for command in (["migrate", "--noinput", "-v", "0"], ["load_team"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )
    log = (tmp_path / "serve.log").open("w+")
    serve = subprocess.Popen([sys.executable, "-m", "tron_site.serve"], cwd=ROOT, env=env, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _ok(lambda: _chat(base).status_code == 200), what="a first answer")
        yield serve, base, tmp_path / "serve.log"
    finally:
        children = list(_children(serve.pid)) if serve.poll() is None else []
        serve.send_signal(signal.SIGTERM)
        try:
            status = serve.wait(timeout=30)
        finally:
            for pid in children:
                if not _gone(pid):
                    os.kill(pid, signal.SIGKILL)  # a failed run must not leave a server behind
            log.close()
    assert status == 0  # Ctrl-C or SIGTERM: a clean stop, even after the crashes below


def _ok(call) -> bool:
    try:
        return call()
    except httpx2.TransportError:
        return False


def test_a_killed_model_process_costs_its_answer_and_is_started_again(tron):
    serve, base, log = tron
    [model] = _pids(serve.pid, "serve_model")  # one model process...
    assert len(_pids(serve.pid, "tron_site.web")) == 2  # ...for both web processes

    body = {
        "model": "tony",
        "stream": True,
        "max_tokens": 200,
        "temperature": 0,
        "messages": [{"role": "user", "content": "Tell me a long story about the sea."}],
    }
    with httpx2.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=60) as response:
        lines = response.iter_lines()
        assert response.status_code == 200
        _wait_for(lambda: next(lines).startswith("data: {"), what="a first chunk")
        os.kill(model, signal.SIGKILL)  # as a segfault in llama.cpp would end it
        rest = [line for line in lines if line.startswith("data: ")]
    assert any('"error"' in line for line in rest)  # the stream says it failed, it does not hang
    _wait_for(lambda: _gone(model), what="the model process to die")

    refused = _chat(base)  # nothing listens until the supervisor has started a new model process
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "model_unavailable"
    assert int(refused.headers["Retry-After"]) > 0
    for path in ("/health", "/api/status", "/admin/login/"):  # the rest of the server is up meanwhile
        assert httpx2.get(f"{base}{path}", timeout=10).status_code == 200

    _wait_for(lambda: _chat(base).status_code == 200, what="an answer after the restart")
    [restarted] = _pids(serve.pid, "serve_model")
    assert restarted != model
    assert f"model process (pid {model}) was killed by SIGKILL" in log.read_text()

    web = _pids(serve.pid, "tron_site.web")[0]
    os.kill(web, signal.SIGKILL)
    _wait_for(
        lambda: web not in _pids(serve.pid, "tron_site.web") and len(_pids(serve.pid, "tron_site.web")) == 2
    )
    assert re.search(rf"web process \d \(pid {web}\) was killed by SIGKILL", log.read_text())
    assert _chat(base).status_code == 200
    assert json.loads(httpx2.get(f"{base}/health", timeout=10).text)["status"] == "ok"
