"""Start the web server (Daphne) and the task worker (django-q2's qcluster) together.

`make run` ends here. Ctrl-C (or SIGTERM) stops both; if either exits on its own, the other is stopped
too, so the pair never half-runs. `--dry-run` prints what would start and exits.
"""

import argparse
import ipaddress
import logging
import os
import signal
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


def commands(host: str, port: int) -> list[list[str]]:
    # No --http-timeout: Daphne would cut long SSE streams.
    web = [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "tron_site.asgi:application"]
    worker = [sys.executable, "manage.py", "qcluster"]
    return [web, worker]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="print the commands and warnings, start nothing"
    )
    args = parser.parse_args(argv)

    import django
    from django.conf import settings

    django.setup()
    host, port = settings.TRON_HOST, settings.TRON_PORT
    for warning in startup_warnings(host, settings.TRON_API_TOKEN):
        log.warning(warning)
    cmds = commands(host, port)
    if args.dry_run:
        for cmd in cmds:
            print(" ".join(cmd))
        return 0

    print(
        f"Tron: http://{host}:{port}/  (admin at /admin/, API docs at /api/docs). Ctrl-C stops.", flush=True
    )
    children = [subprocess.Popen(cmd) for cmd in cmds]

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
