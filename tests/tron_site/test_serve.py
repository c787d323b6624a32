import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.net import free_port
from tron_site import serve as serve_module
from tron_site.serve import (
    Child,
    commands,
    describe_exit,
    listening_sockets,
    startup_warnings,
    supervise,
    web_cpus,
)

ROOT = Path(__file__).resolve().parents[2]


def test_it_starts_daphne_on_the_configured_address_and_the_worker():
    web, worker = commands("127.0.0.1", 3000)
    assert web[1:] == ["-m", "tron_site.web", "-b", "127.0.0.1", "-p", "3000", "tron_site.asgi:application"]
    assert "--http-timeout" not in web  # long SSE streams must not be cut
    assert worker[1:] == ["manage.py", "qcluster"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_no_warning_on_loopback(host):
    assert startup_warnings(host, token="") == []


def test_warns_when_open_on_a_public_address():
    [warning] = startup_warnings("0.0.0.0", token="", vapi_secret="s")
    assert "TRON_API_TOKEN" in warning


def test_warns_when_vapi_webhooks_are_open_on_a_public_address():
    [warning] = startup_warnings("0.0.0.0", token="x")
    assert "VAPI_SECRET" in warning and "/vapi/events" in warning


def test_no_warning_with_a_token_and_a_vapi_secret():
    assert startup_warnings("0.0.0.0", token="x", vapi_secret="s") == []


def test_dry_run_prints_the_commands_and_the_warning():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRON_")}
    env.update(
        TRON_HOST="0.0.0.0", TRON_PORT="3999", TRON_WEB_PROCESSES="1", DATABASE_URL="sqlite:///:memory:"
    )
    result = subprocess.run(
        [sys.executable, "-m", "tron_site.serve", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert "-b 0.0.0.0 -p 3999" in result.stdout
    assert "manage.py serve_model" in result.stdout  # no key: the local model's process starts too
    assert "TRON_API_TOKEN is not set" in result.stderr


def _children_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def test_each_web_process_serves_a_listening_socket_of_its_own():
    *web, worker = commands("127.0.0.1", 3000, fds=[7, 8])
    assert [cmd[1:] for cmd in web] == [
        ["-m", "tron_site.web", "--fd", "7", "tron_site.asgi:application"],
        ["-m", "tron_site.web", "--fd", "8", "tron_site.asgi:application"],
    ]
    assert worker[1:] == ["manage.py", "qcluster"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads connections on Linux")
def test_the_kernel_spreads_a_burst_of_connections_over_the_web_processes_sockets():
    import socket

    socks = listening_sockets("127.0.0.1", 0, 2)
    clients = []
    try:
        port = socks[0].getsockname()[1]
        assert socks[1].getsockname()[1] == port
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        accepted = []
        for sock in socks:
            sock.setblocking(False)
            count = 0
            with contextlib.suppress(BlockingIOError):
                while True:
                    sock.accept()[0].close()
                    count += 1
            accepted.append(count)
        # By the connections' addresses: all 40 on one socket would happen once in 2**39 runs.
        assert sum(accepted) == 40 and min(accepted) > 0, accepted
    finally:
        for sock in [*socks, *clients]:
            sock.close()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_several_web_processes_are_kept_on_a_core_each_in_turn():
    cpus = sorted(os.sched_getaffinity(0))
    assert web_cpus(3) == [cpus[i % len(cpus)] for i in range(3)]
    assert web_cpus(1) == [None]  # one process runs anywhere
    assert web_cpus(2, pin=False) == [None, None]


@pytest.mark.parametrize(("sig", "web_processes"), [("SIGINT", 1), ("SIGTERM", 1), ("SIGTERM", 2)])
def test_a_signal_stops_the_server_and_the_worker_together(tmp_path, sig, web_processes):
    import signal
    import time
    import urllib.request

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRON_", "DJANGO_", "REDIS_", "OPENAI_"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'serve.sqlite3'}",
        TRON_PORT=str(port),
        TRON_DATA_DIR=str(tmp_path),
        TRON_WEB_PROCESSES=str(web_processes),
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    serve = subprocess.Popen([sys.executable, "-m", "tron_site.serve"], cwd=ROOT, env=env)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        children = _children_of(serve.pid)
        assert len(children) == web_processes + 2  # daphne(s), qcluster and the local model's process
        if web_processes > 1 and len(os.sched_getaffinity(0)) > 1:
            web = [pid for pid in children if b"tron_site.web" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            assert sorted(len(os.sched_getaffinity(pid)) for pid in web) == [1, 1]  # a core each
            assert len({*os.sched_getaffinity(web[0]), *os.sched_getaffinity(web[1])}) == 2
        serve.send_signal(getattr(signal, sig))
        assert serve.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in children)
    finally:
        if serve.poll() is None:
            serve.kill()
        for pid in _children_of(serve.pid) if serve.poll() is None else children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)  # a failed run must not leave a server behind


# --- Supervision ----------------------------------------------------------------------------------

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
CRASHER = [sys.executable, "-c", "import sys; sys.exit(3)"]


def _after(seconds, action):
    import threading

    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def _stop_supervisor():
    import signal

    os.kill(os.getpid(), signal.SIGTERM)  # supervise() handles it in the main thread


def _wait_for(condition, seconds=10.0):
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_exits_are_described_by_status_or_signal():
    assert describe_exit(3) == "exited with status 3"
    assert describe_exit(0) == "exited with status 0"
    assert describe_exit(-11) == "was killed by SIGSEGV"


def test_a_child_killed_by_a_signal_is_logged_and_started_again(caplog, monkeypatch):
    import signal

    monkeypatch.setattr(serve_module, "MAX_BACKOFF", 0.05)
    child = Child("web process 1", SLEEPER)
    pids = []

    def kill_then_stop():
        _wait_for(lambda: child.process is not None)
        pids.append(child.process.pid)
        os.kill(child.process.pid, signal.SIGSEGV)
        _wait_for(lambda: child.process.pid != pids[0] and child.running())
        pids.append(child.process.pid)
        _stop_supervisor()

    timer = _after(0.1, kill_then_stop)
    with caplog.at_level("WARNING", logger="tron_site.serve"):
        assert supervise([child], poll_seconds=0.02) == 0
    timer.join()
    assert len(set(pids)) == 2  # a new process took its place
    assert f"web process 1 (pid {pids[0]}) was killed by SIGSEGV" in caplog.text
    assert not child.running()  # and the stop stopped it


def test_a_web_process_that_keeps_dying_stops_everything_with_status_1(caplog, monkeypatch):
    monkeypatch.setattr(serve_module, "MAX_BACKOFF", 0.01)
    crashing, healthy = Child("web process 1", CRASHER), Child("worker", SLEEPER)
    with caplog.at_level("ERROR", logger="tron_site.serve"):
        assert supervise([crashing, healthy], poll_seconds=0.01) == 1
    assert caplog.text.count("web process 1 (pid") == serve_module.CRASH_LIMIT
    assert "exited with status 3" in caplog.text and "stopping Tron" in caplog.text
    assert not healthy.running()


def test_the_model_process_is_never_given_up_on(monkeypatch):
    monkeypatch.setattr(serve_module, "MAX_BACKOFF", 0.01)
    model, web = Child("model process", CRASHER, essential=False), Child("web process 1", SLEEPER)
    timer = _after(
        0.1, lambda: (_wait_for(lambda: len(model.crashes) > serve_module.CRASH_LIMIT), _stop_supervisor())
    )
    assert supervise([model, web], poll_seconds=0.01) == 0
    timer.join()
    assert not web.running()


def test_stopping_waits_for_the_web_processes_before_it_stops_the_model_process(tmp_path):
    """A web process drains on SIGTERM (tron_site/web.py) and uses the model process meanwhile: the
    model process gets its SIGTERM only once the web process has exited."""

    log = tmp_path / "log"
    draining = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        "    time.sleep(0.5)\n"
        f"    open({str(log)!r}, 'a').write('web exited\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "time.sleep(60)\n"
    )
    model_stops = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        f"    open({str(log)!r}, 'a').write('model stopped\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "time.sleep(60)\n"
    )
    model = Child("model process", [sys.executable, "-c", model_stops], essential=False, serves_others=True)
    web = Child("web process 1", [sys.executable, "-c", draining])
    timer = _after(0.5, _stop_supervisor)
    assert supervise([model, web], poll_seconds=0.02, stop_seconds=30) == 0
    timer.join()
    # Each exited when told (one killed would have written nothing), the model process last.
    assert log.read_text().splitlines() == ["web exited", "model stopped"]
    assert (web.process.returncode, model.process.returncode) == (0, 0)


def test_a_child_that_overruns_the_bound_is_killed(caplog):
    web = Child(
        "web process 1",
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
        ],
    )
    timer = _after(0.5, _stop_supervisor)
    with caplog.at_level("ERROR", logger="tron_site.serve"):
        assert supervise([web], poll_seconds=0.02, stop_seconds=0.5) == 0
    timer.join()
    assert web.process.returncode == -9
    assert "did not stop within" in caplog.text


MODEL = "manage.py serve_model"
WEB = "-m tron_site.web --proxy-headers -b 127.0.0.1 -p 3998 tron_site.asgi:application"
WORKER = "manage.py qcluster"


@pytest.mark.parametrize(
    "role, expected", [("web", [MODEL, WEB]), ("worker", [WORKER]), ("all", [MODEL, WEB, WORKER])]
)
def test_a_role_runs_the_web_processes_or_the_worker_as_deploy_systemd_starts_them(role, expected):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRON_")}
    env.update(
        TRON_PORT="3998",
        TRON_WEB_PROCESSES="1",
        TRON_BEHIND_HTTPS_PROXY="true",
        DATABASE_URL="sqlite:///:memory:",
    )
    result = subprocess.run(
        [sys.executable, "-m", "tron_site.serve", "--dry-run", "--role", role],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    # Behind Caddy, Daphne reads the client's address from X-Forwarded-For (the web role, not the worker).
    assert [line.split(" ", 1)[1] for line in result.stdout.splitlines()] == expected
