"""A caller's conversation outlives the server: Daphne stopped and started again on the same database.

Runs real Daphne processes on a SQLite file of their own (whatever database the suite uses), so it also
covers the session lookup a web process makes on the event loop (agents/loop_reads.py) end to end.
"""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai

from tests.net import free_port
from tests.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, upstream: FakeUpstream) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TRON_", "OPENAI_", "REDIS_"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'tron.sqlite3'}",
        TRON_DATA_DIR=str(tmp_path),
        TRON_LLM="openai",
        OPENAI_BASE_URL=upstream.base_url,
        OPENAI_API_KEY="sk-test",
        DJANGO_DEBUG="false",
    )
    return env


def _manage(env, *args):
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


class Daphne:
    def __init__(self, env: dict, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tron_site.web",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "tron_site.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("Daphne did not start") from None
                time.sleep(0.1)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _say(server: Daphne, text: str):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0) as sdk:
        return sdk.chat.completions.with_raw_response.create(
            model="tony",
            messages=[{"role": "user", "content": text}],
            extra_headers={"X-Request-ID": "durable"},
        )


def test_a_caller_continues_the_same_conversation_after_a_restart(tmp_path, upstream):
    upstream.reset()
    env = _env(tmp_path, upstream)
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "load_team")
    port = free_port()

    server = Daphne(env, port)
    try:
        before = _say(server, "My name is Ada.")
    finally:
        server.stop()
    server = Daphne(env, port)
    try:
        after = _say(server, "What is my name?")
    finally:
        server.stop()

    assert after.headers["X-Tron-Process-ID"] == before.headers["X-Tron-Process-ID"]
    assert after.headers["X-Tron-Caller-ID"] == "req-durable"
    prompt = [m["content"] for m in upstream.last.body["messages"]]
    assert prompt[-3:] == ["My name is Ada.", "Hello there!", "What is my name?"]  # the stored transcript
