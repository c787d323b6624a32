"""The server as `make run` starts it: `collectstatic`, then Daphne (tron_site.web) in a process of its own, on a socket
made here (as tron_site/serve.py shares one with several Daphnes), against the test database."""

import contextlib
import os
import socket
import subprocess
import sys
import time

import httpx2
from django.conf import settings
from django.db import connection


def database_url() -> str:
    """The test database, as a DATABASE_URL the server process can open."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class DaphneServer:
    def __init__(self, data_dir, **env):
        self.env = {
            **os.environ,
            "TRON_DATA_DIR": str(data_dir),
            # Its metrics apart from the test process's (one killed mid-stream would leave its stream counted).
            "PROMETHEUS_MULTIPROC_DIR": str(data_dir / "metrics"),
            "DATABASE_URL": database_url(),
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "a-test-key-" + "x" * 50,
            "TRON_LLM": "openai",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # nothing listens: tests that chat give their own
            "OPENAI_API_KEY": "sk-test",
            "TRON_CACHE_SECONDS": "0",  # tests change personas between requests
            "TRON_CALLER_REQUESTS_PER_MINUTE": "0",  # many requests from one address
            "TRON_CALLER_DAILY_SPEND_USD": "none",
            "REDIS_URL": "",
            **env,
        }
        self.process = None
        self.sock = None

    def manage(self, *args):
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=self.env, check=True, timeout=300
        )

    def start(self) -> "DaphneServer":
        self.manage("collectstatic", "--noinput", "-v", "0")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.set_inheritable(True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tron_site.web",
                "--fd",
                str(self.sock.fileno()),
                "tron_site.asgi:application",
            ],
            cwd=settings.BASE_DIR,
            env=self.env,
            pass_fds=(self.sock.fileno(),),
        )
        deadline = time.monotonic() + 120  # a bound on waiting for start-up, not a latency check
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Daphne exited with status {self.process.returncode}")
            try:
                if httpx2.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return self
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("Daphne did not answer /health")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.sock:
            self.sock.close()


@contextlib.contextmanager
def two_servers(data_dir, **env):
    """Two web processes on one database, as two of `make run`'s (or two nodes') would be."""
    first = DaphneServer(data_dir, **env).start()
    try:
        second = DaphneServer(data_dir, **env).start()
    except Exception:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
