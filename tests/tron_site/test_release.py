"""`manage.py release`, the once-per-release step of deploy/ (tron-release.service): the deployment checks
first, so a release with a development setting or a missing secret changes nothing; then the database."""

import sqlite3

from tests.tron_site.test_settings import manage

PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "release-test-" + "q8Zr3" * 12,
    "DJANGO_ALLOWED_HOSTS": "tron.example.com",
    "TRON_BEHIND_HTTPS_PROXY": "true",
    "TRON_API_TOKEN": "token",
    "TRON_CHAT_API_KEY": "key",
    "VAPI_SECRET": "secret",
}


def test_a_release_refused_by_the_deployment_checks_changes_nothing(tmp_path):
    database = tmp_path / "tron.sqlite3"
    env = {
        **PRODUCTION,
        "TRON_CHAT_API_KEY": "",
        "DATABASE_URL": f"sqlite:///{database}",
        "TRON_DATA_DIR": str(tmp_path),
    }
    result = manage("release", **env)
    assert result.returncode != 0 and "tron.W001" in result.stderr  # the chat key is missing
    assert (
        not database.exists()
        or not sqlite3.connect(database).execute("SELECT name FROM sqlite_master").fetchall()
    )


def test_without_a_proxy_the_deployment_checks_want_https_settings():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, "TRON_BEHIND_HTTPS_PROXY": ""}
    )
    assert result.returncode != 0 and "security.W012" in result.stderr  # session cookie over plain HTTP


def test_a_release_migrates_and_loads_the_team_and_schedules_and_a_second_changes_nothing(tmp_path):
    database = tmp_path / "tron.sqlite3"
    env = {**PRODUCTION, "DATABASE_URL": f"sqlite:///{database}", "TRON_DATA_DIR": str(tmp_path)}
    first = manage("release", "-v", "0", **env)
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(database) as db:
        personas = db.execute("SELECT count(*) FROM agents_persona").fetchone()[0]
        schedules = db.execute("SELECT count(*) FROM django_q_schedule").fetchone()[0]
    assert personas > 5 and schedules > 2
    second = manage("release", "-v", "0", **env)
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM agents_persona").fetchone()[0] == personas
        assert db.execute("SELECT count(*) FROM django_q_schedule").fetchone()[0] == schedules
