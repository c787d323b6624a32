import os
import subprocess
import sys
from pathlib import Path

import pytest

from tron_site.serve import commands, startup_warnings

ROOT = Path(__file__).resolve().parents[2]


def test_it_starts_daphne_on_the_configured_address_and_the_worker():
    web, worker = commands("127.0.0.1", 3000)
    assert web[1:] == ["-m", "daphne", "-b", "127.0.0.1", "-p", "3000", "tron_site.asgi:application"]
    assert "--http-timeout" not in web  # long SSE streams must not be cut
    assert worker[1:] == ["manage.py", "qcluster"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_no_warning_on_loopback(host):
    assert startup_warnings(host, token="") == []


def test_warns_when_open_on_a_public_address():
    [warning] = startup_warnings("0.0.0.0", token="")
    assert "TRON_API_TOKEN" in warning


def test_no_warning_with_a_token():
    assert startup_warnings("0.0.0.0", token="x") == []


def test_dry_run_prints_the_commands_and_the_warning():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRON_")}
    env.update(TRON_HOST="0.0.0.0", TRON_PORT="3999", DATABASE_URL="sqlite:///:memory:")
    result = subprocess.run(
        [sys.executable, "-m", "tron_site.serve", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert "-b 0.0.0.0 -p 3999" in result.stdout
    assert "TRON_API_TOKEN is not set" in result.stderr
