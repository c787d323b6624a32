import pytest

from tests.factories import make_persona


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
    """Tests start with no API token; auth tests set one."""
    settings.TRON_API_TOKEN = ""


@pytest.fixture(autouse=True)
def _fresh_process_memory(monkeypatch):
    """Each test's database starts over, so what a server process keeps in memory must too: the
    personas and their prompt context it cached, the model prices, the refusals it remembers (budgets, the process limit),
    whether delegated work waits for delivery."""
    from agents import budgets, context, delegation, personas, pricing, sessions

    def forget():
        personas.clear_cache()
        pricing.clear_cache()
        context.clear_cache()
        budgets.forget_refusals()
        delegation.forget_waiting()

    monkeypatch.setattr(sessions, "_full_at", None)
    monkeypatch.setattr(sessions, "_room", (0.0, 0))
    forget()
    yield
    forget()


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
