import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User


@pytest.fixture
def browser(tmp_path):
    from tests.browser import chromium

    driver = chromium(tmp_path / "chromium")
    yield driver
    driver.quit()


@pytest.fixture
def operator(transactional_db):
    """A superuser the server can sign in: (username, password)."""
    password = "correct horse battery staple"
    user = User.objects.create_superuser("ops")
    # Hashed as the server's settings hash (the tests' fast hasher is not among the server's).
    user.password = PBKDF2PasswordHasher().encode(password, PBKDF2PasswordHasher().salt())
    user.save()
    return "ops", password


@pytest.fixture(scope="module")
def daphne(tmp_path_factory, django_db_setup, upstream):
    """The server as `make run` starts it, its model the fake upstream, its dashboard refreshed every second."""
    from tests.daphne import DaphneServer

    server = DaphneServer(
        tmp_path_factory.mktemp("data"), OPENAI_BASE_URL=upstream.base_url, TRON_DASHBOARD_REFRESH_SECONDS="1"
    ).start()
    yield server
    server.stop()
