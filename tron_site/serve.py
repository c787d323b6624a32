"""Start and supervise Tron's processes: the web server (Daphne), the task worker (django-q2's
qcluster) and, with the local provider, the model process (`manage.py serve_model`).

`make run` ends here. The "Tron: http://…" line is printed once the server answers 200 on
/health/ready (`announce_when_ready`); until then, every few seconds, what it is waiting for. A process
that dies, by a signal or an exit status, is logged and started again (`supervise`). Ctrl-C (or SIGTERM) stops them all and exits 0: the web processes (tron_site/web.py)
and the worker first, each given TRON_DRAIN_SECONDS (+ STOP_MARGIN_SECONDS) to finish what it runs,
then the model process they use; a web process or worker that keeps dying stops them all and exits 1.
`--dry-run` prints what would start and exits.
"""

import argparse
import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tron_site.settings")

log = logging.getLogger("tron_site.serve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def startup_warnings(host: str, token: str, vapi_secret: str = "", chat_key: str = "x") -> list[str]:
    """What an operator should hear before the server opens on a public address without its secrets."""
    if is_loopback(host):
        return []
    warnings = []
    if not chat_key:
        warnings.append(
            f"TRON_CHAT_API_KEY is not set and the server binds to {host}: anyone who can reach this address "
            "can claim any caller id, phone numbers included, and with it that caller's conversation and "
            "notes. Set TRON_CHAT_API_KEY (docs/security.md)."
        )
    if not token:
        warnings.append(
            f"TRON_API_TOKEN is not set and the server binds to {host}: /api/* and /internal/* are open "
            "to anyone who can reach this address. Set TRON_API_TOKEN."
        )
    if not vapi_secret:
        warnings.append(
            f"VAPI_SECRET is not set and the server binds to {host}: anyone who can reach this address can "
            "post VAPI webhooks to /vapi/events (start and end calls, run persona tools). Set VAPI_SECRET."
        )
    return warnings


def commands(host: str, port: int, fds: list[int | str] = (), proxy_headers: bool = False) -> list[list[str]]:
    """The Daphne command(s) and the worker's: with no `fds` one Daphne that binds the address itself,
    else one Daphne on each listening socket (`listening_sockets`). With `proxy_headers`
    (TRON_BEHIND_HTTPS_PROXY), Daphne takes the client's address and scheme from the proxy's
    X-Forwarded-For and X-Forwarded-Proto."""
    # Daphne's command line, which drains on SIGTERM (tron_site/web.py). No --http-timeout: Daphne would
    # cut long SSE streams.
    app = "tron_site.asgi:application"
    proxy = ["--proxy-headers"] if proxy_headers else []
    if not fds:
        web = [[sys.executable, "-m", "tron_site.web", *proxy, "-b", host, "-p", str(port), app]]
    else:
        web = [[sys.executable, "-m", "tron_site.web", *proxy, "--fd", str(fd), app] for fd in fds]
    return [*web, [sys.executable, "manage.py", "qcluster"]]


MODEL_COMMAND = [sys.executable, "manage.py", "serve_model"]

# A child that dies is started again after a pause that doubles with each recent crash (1, 2, 4, ... s,
# at most MAX_BACKOFF). A web process or the worker that crashes CRASH_LIMIT times within CRASH_WINDOW
# seconds cannot start (a port in use, a broken install): the supervisor gives up and exits 1. The
# model process is never given up on: while it is down, chat requests for it get a 503 and the rest
# of the server works.
MAX_BACKOFF = 30.0
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0
# Stopping: the web processes and the worker get TRON_DRAIN_SECONDS and this margin to exit before they
# are killed; the model process (which they need until then) gets STOP_SECONDS after them.
STOP_MARGIN_SECONDS = 10.0
STOP_SECONDS = 15.0


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


@dataclass
class Child:
    name: str
    command: list[str]
    essential: bool = True  # its crash loop stops the whole server
    serves_others: bool = False  # stopped only once the others have stopped (the model process)
    fds: tuple[int, ...] = ()  # file descriptors it inherits (a web process: its listening socket)
    cpu: int | None = None  # the core it is kept on (`web_cpus`), or None to run anywhere
    process: subprocess.Popen | None = None
    crashes: deque = field(default_factory=deque)  # when it died lately (monotonic seconds)
    restart_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, pass_fds=self.fds)
        if self.cpu is not None:  # before it starts a thread: its threads inherit the affinity
            os.sched_setaffinity(self.process.pid, {self.cpu})
        self.restart_at = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def died(self, now: float) -> bool:
        """Note a death; True if the child is to be started again, False if it is given up on."""
        log.error("%s (pid %d) %s", self.name, self.process.pid, describe_exit(self.process.returncode))
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > CRASH_WINDOW:
            self.crashes.popleft()
        if self.essential and len(self.crashes) >= CRASH_LIMIT:
            log.error(
                "%s died %d times within %.0fs: stopping Tron", self.name, len(self.crashes), CRASH_WINDOW
            )
            return False
        delay = min(MAX_BACKOFF, 2.0 ** (len(self.crashes) - 1))
        log.warning("starting %s again in %.0fs", self.name, delay)
        self.restart_at = now + delay
        return True


def supervise(children: list[Child], poll_seconds: float = 0.2, stop_seconds: float = STOP_SECONDS) -> int:
    """Run the children until SIGTERM or SIGINT (then 0), restarting any that dies; 1 if one that is
    essential keeps dying. Stopping sends SIGTERM to all but those that serve others, and SIGKILL to
    those still up `stop_seconds` later; then the same to those that serve others, with STOP_SECONDS."""
    stopping = []

    def stop(signum=None, frame=None):
        stopping.append(signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        for child in children:
            child.start()
        while not stopping:
            now = time.monotonic()
            for child in children:
                if child.running():
                    continue
                if child.restart_at is None and not child.died(now):
                    status = 1
                    stopping.append(None)
                    break
                if child.restart_at is not None and now >= child.restart_at:
                    child.start()
            time.sleep(poll_seconds)
    finally:
        # SIGTERM, not SIGINT: a shell may start us with SIGINT ignored (background jobs), and children
        # inherit that; Daphne, qcluster and the model process all shut down cleanly on SIGTERM.
        _stop([child for child in children if not child.serves_others], stop_seconds)
        _stop([child for child in children if child.serves_others], STOP_SECONDS)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status


def _stop(children: list[Child], seconds: float) -> None:
    """SIGTERM to those running, SIGKILL to those still running `seconds` later."""
    alive = [child for child in children if child.running()]
    for child in alive:
        child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + seconds
    for child in alive:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("%s (pid %d) did not stop within %.0fs: killed", child.name, child.process.pid, seconds)
            child.process.kill()
            child.process.wait()


READY_POLL_SECONDS = 0.2
WAITING_REPORT_SECONDS = 5.0  # how often "not ready yet" is repeated while the server is not ready


def local_url(host: str, port: int) -> str:
    """The server's address as this machine reaches it (a wildcard address is reached on loopback)."""
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def host_header(allowed_hosts: list[str], fallback: str) -> str:
    """A Host that DJANGO_ALLOWED_HOSTS accepts (Django answers 400 to any other): the first name it
    lists, else (`*`, or nothing) the address asked."""
    for allowed in allowed_hosts:
        if allowed != "*":
            return allowed.lstrip(".")  # ".example.com" also matches example.com
    return fallback


def readiness(url: str, host: str) -> tuple[bool, str]:
    """(ready, what is missing) from GET {url}/health/ready."""
    request = urllib.request.Request(f"{url}/health/ready", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status == 200, ""
    except urllib.error.HTTPError as exc:
        try:
            missing = json.loads(exc.read()).get("missing") or {}
            return False, "; ".join(f"{check}: {reason}" for check, reason in missing.items())
        except ValueError:
            return False, f"/health/ready answered {exc.code}"
    except OSError as exc:  # not listening yet
        return False, f"the web server does not answer yet ({getattr(exc, 'reason', exc)})"


def announce_when_ready(url: str, host: str, line: str, stop: threading.Event) -> None:
    """Print `line` once /health/ready answers 200; until then, at most every WAITING_REPORT_SECONDS,
    what is missing. Runs in a thread of its own while the supervisor supervises."""
    reported = None
    while not stop.is_set():
        ready, missing = readiness(url, host)
        if ready:
            print(line, flush=True)
            return
        if reported is None or time.monotonic() - reported >= WAITING_REPORT_SECONDS:
            print(f"Tron: not ready yet: {missing}", flush=True)
            reported = time.monotonic()
        stop.wait(READY_POLL_SECONDS)


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """The listening sockets of `count` web processes. On Linux each process gets a socket of its own
    on the one address (SO_REUSEPORT), and the kernel spreads new connections over them by their
    addresses. On one shared socket, whichever process wakes first accepts a whole burst: 20
    connections at once all went to one of two processes in 10-17 of 30 rounds, against splits of 9-11
    per process on sockets of their own (measured 2026-12-03). Elsewhere SO_REUSEPORT does not spread
    connections, so all share one socket.

    The supervisor keeps every socket open, so connections that reach a web process while it is
    restarted wait in its socket's queue for the new process: delayed, never refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = (host.strip("[]"), port)
    if not sys.platform.startswith("linux"):
        shared = socket.create_server(address, family=family, backlog=2048)
        shared.set_inheritable(True)
        return [shared] * count
    socks = []
    for _ in range(count):
        sock = socket.create_server(address, family=family, backlog=2048, reuse_port=True)
        sock.set_inheritable(True)
        address = sock.getsockname()[:2]  # the port the first one got, when `port` is 0
        socks.append(sock)
    return socks


def web_cpus(count: int, pin: bool = True) -> list[int | None]:
    """The core each of `count` web processes is kept on: with several, one each, in turn over the
    cores this process may use (Linux only); else None, to run anywhere.

    A web process's event loop and its database threads take turns on one GIL. Left to the
    scheduler, they run on different cores, and every hand-over moves the objects both touch from one
    core's cache to the other's: with each of two processes kept on a core of its own, 20 streams
    started at once had 23-26 ms added to their time to first token instead of 31-35 ms, for 12%
    less CPU per stream (bench/stream_overhead.py, 2 cores, 2026-12-03). Other processes (the worker,
    the model process, a database) still run anywhere."""
    if not pin or count < 2 or not hasattr(os, "sched_setaffinity"):
        return [None] * count
    cpus = sorted(os.sched_getaffinity(0))
    return [cpus[i % len(cpus)] for i in range(count)]


ROLES = ("all", "web", "worker")


def node_children(role: str, settings, fds: list[int | str] = ()) -> list[Child]:
    """The processes this `serve` runs: all of a node's (`make run`), or one half of them, for a service
    manager that runs them as two services (deploy/systemd): the web processes (with the local model's
    process, which the worker of the same machine reaches on its socket) or the worker."""
    *web, worker = commands(settings.TRON_HOST, settings.TRON_PORT, fds, settings.TRON_BEHIND_HTTPS_PROXY)
    children = []
    if role != "worker":
        if settings.TRON_LLM == "local":
            children.append(Child("model process", MODEL_COMMAND, essential=False, serves_others=True))
        cpus = web_cpus(len(web), settings.TRON_PIN_WEB_PROCESSES)
        children += [
            Child(f"web process {i + 1}", cmd, fds=tuple(fds[i : i + 1]), cpu=cpus[i])
            for i, cmd in enumerate(web)
        ]
    if role != "web":
        children.append(Child("worker", worker))
    return children


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="print the commands and warnings, start nothing"
    )
    parser.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="all: the web processes and the worker (make run); web or worker: only those (deploy/systemd)",
    )
    args = parser.parse_args(argv)

    import django
    from django.conf import settings

    django.setup()
    host, port, processes = settings.TRON_HOST, settings.TRON_PORT, settings.TRON_WEB_PROCESSES
    serves_web = args.role != "worker"
    secrets = (settings.TRON_API_TOKEN, settings.VAPI_SECRET, settings.TRON_CHAT_API_KEY)
    for warning in startup_warnings(host, *secrets) if serves_web else []:  # the worker alone binds nothing
        log.warning(warning)
    if args.dry_run:
        shown = [f"<socket {i + 1}>" for i in range(processes)] if processes > 1 else []
        for child in node_children(args.role, settings, shown):
            print(" ".join(child.command))
        return 0

    # Open until we exit; none for the worker alone, which must not share the web processes' port.
    socks = listening_sockets(host, port, processes) if serves_web and processes > 1 else []
    fds = [sock.fileno() for sock in socks]
    children = node_children(args.role, settings, fds)
    if not serves_web:
        return supervise(children)
    url = local_url(host, port)
    line = f"Tron: http://{host}:{port}/  (admin at /admin/, API docs at /api/docs). Ctrl-C stops."
    stop = threading.Event()
    announcer = threading.Thread(
        target=announce_when_ready,
        args=(url, host_header(settings.ALLOWED_HOSTS, url.split("//")[1]), line, stop),
        daemon=True,
    )
    announcer.start()
    try:
        return supervise(
            children,
            stop_seconds=settings.TRON_DRAIN_NOTICE_SECONDS
            + settings.TRON_DRAIN_SECONDS
            + STOP_MARGIN_SECONDS,
        )
    finally:
        stop.set()


if __name__ == "__main__":
    sys.exit(main())
