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


@pytest.fixture(autouse=True)
def _open_api(settings):
    """Tests start with no API token; auth tests set one."""
    settings.TRON_API_TOKEN = ""


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
