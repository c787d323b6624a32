from datetime import timedelta

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tests.factories import make_persona

# Fuzzing (tests/fuzz) runs in every `make test`, CI's two passes included, on a small fixed budget of
# examples per test; `make fuzz` runs the long campaign (`--hypothesis-profile=campaign`). A deadline
# catches a request that hangs, not a slow one: it is far above any example's time.
hypothesis_settings.register_profile(
    "tron",
    max_examples=25,
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)
hypothesis_settings.register_profile(
    "campaign", parent=hypothesis_settings.get_profile("tron"), max_examples=1000
)
hypothesis_settings.load_profile("tron")


@pytest.fixture
def tony(db):
    return make_persona(name="Tony", role="CTO", life_enabled=True, sort_order=1)


@pytest.fixture
def maya(db):
    return make_persona(name="Maya", role="CMO", sort_order=2)


@pytest.fixture(autouse=True)
def _sync_tasks(monkeypatch):
    """django-q2 reads Q_CLUSTER["sync"] at import; patch Conf so async_task runs inline in tests."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def queued_tasks(monkeypatch):
    """Tasks wait in the broker until the test calls the fixture's value (tests/worker.run_queued)."""
    from django_q.conf import Conf

    from tests.worker import run_queued

    monkeypatch.setattr(Conf, "SYNC", False)
    return run_queued


@pytest.fixture(autouse=True)
def _open_api(settings):
    """Tests start with no API token and no limits per caller (most tests are many requests from one
    address); the tests of tokens and limits set them."""
    settings.TRON_API_TOKEN = ""
    settings.TRON_CALLER_REQUESTS_PER_MINUTE = 0
    settings.TRON_CALLER_DAILY_SPEND_USD = None


@pytest.fixture(autouse=True)
def _fresh_process_memory():
    """Each test's database starts over, so what a server process keeps in memory must too (and the
    price table, which tests change through TRON_PRICES)."""
    from agents import cache, pricing

    pricing.clear_cache()
    cache.clear_all()
    yield
    cache.clear_all()


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session", autouse=True)
def _close_postgres_pools(django_db_setup):
    """Connections held by a PostgreSQL pool (opened by live-server and runtime threads) would keep the
    test database from being dropped at the end; close the pools first."""
    yield
    from django.db import connections

    for connection in connections.all():
        if hasattr(connection, "close_pool"):
            connection.close_pool()


@pytest.fixture(scope="session")
def upstream():
    """The mock LLM upstream (tests/upstream.py), one for the whole session; tests script it with reset()."""
    from tests.upstream import FakeUpstream

    server = FakeUpstream().start()
    yield server
    server.stop()
