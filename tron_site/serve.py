"""Start the web server (Daphne) and the task worker (django-q2's qcluster) together.

`make run` ends here. Ctrl-C (or SIGTERM) stops both; if either exits on its own, the other is stopped
too, so the pair never half-runs. `--dry-run` prints what would start and exits.
"""

import argparse
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tron_site.settings")

log = logging.getLogger("tron_site.serve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def startup_warnings(host: str, token: str) -> list[str]:
    if not token and not is_loopback(host):
        return [
            f"TRON_API_TOKEN is not set and the server binds to {host}: /api/* and /internal/* are open "
            "to anyone who can reach this address. Set TRON_API_TOKEN."
        ]
    return []


def commands(host: str, port: int, web_processes: int = 1, fd: int | str = "") -> list[list[str]]:
    """The Daphne command(s) and the worker's. Several web processes share one listening socket (`fd`),
    and the kernel spreads connections over them; one process binds the address itself."""
    # No --http-timeout: Daphne would cut long SSE streams.
    app = "tron_site.asgi:application"
    if web_processes == 1:
        web = [[sys.executable, "-m", "daphne", "-b", host, "-p", str(port), app]]
    else:
        web = [[sys.executable, "-m", "daphne", "--fd", str(fd), app] for _ in range(web_processes)]
    return [*web, [sys.executable, "manage.py", "qcluster"]]


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host.strip("[]"), port), family=family, backlog=2048)
    sock.set_inheritable(True)
    return sock


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="print the commands and warnings, start nothing"
    )
    args = parser.parse_args(argv)

    import django
    from django.conf import settings

    django.setup()
    host, port, processes = settings.TRON_HOST, settings.TRON_PORT, settings.TRON_WEB_PROCESSES
    for warning in startup_warnings(host, settings.TRON_API_TOKEN):
        log.warning(warning)
    sock = listening_socket(host, port) if processes > 1 and not args.dry_run else None
    cmds = commands(host, port, processes, sock.fileno() if sock else "<shared socket>")
    if args.dry_run:
        for cmd in cmds:
            print(" ".join(cmd))
        return 0

    print(
        f"Tron: http://{host}:{port}/  (admin at /admin/, API docs at /api/docs). Ctrl-C stops.", flush=True
    )
    pass_fds = (sock.fileno(),) if sock else ()
    children = [subprocess.Popen(cmd, pass_fds=pass_fds) for cmd in cmds]

    stopping = []

    def stop(signum=None, frame=None):
        stopping.append(signum)
        # SIGTERM, not SIGINT: a shell may start us with SIGINT ignored (background jobs), and children
        # inherit that; both Daphne and qcluster shut down cleanly on SIGTERM.
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        stop()
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
    failures = [child.returncode for child in children if child.returncode and child.returncode > 0]
    return failures[0] if failures else 0


if __name__ == "__main__":
    sys.exit(main())
