from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def run(**kwargs):
    out = StringIO()
    call_command("ensure_admin", stdout=out, **kwargs)
    return out.getvalue()


def test_it_creates_the_admin_from_the_environment(settings):
    settings.DJANGO_SUPERUSER_USERNAME = "ops"
    settings.DJANGO_SUPERUSER_PASSWORD = "correct horse battery"
    assert "Created admin user 'ops'" in run()
    user = get_user_model().objects.get(username="ops")
    assert user.is_superuser and user.check_password("correct horse battery")


def test_running_twice_keeps_the_existing_user(settings):
    settings.DJANGO_SUPERUSER_USERNAME = "ops"
    settings.DJANGO_SUPERUSER_PASSWORD = "first password"
    run()
    settings.DJANGO_SUPERUSER_PASSWORD = "second password"
    run()
    assert get_user_model().objects.get(username="ops").check_password("first password")


def test_without_variables_it_explains_how_to_create_one(settings):
    settings.DJANGO_SUPERUSER_USERNAME = ""
    assert "manage.py createsuperuser" in run()
    assert not get_user_model().objects.exists()


def test_a_username_without_password_is_an_error(settings):
    settings.DJANGO_SUPERUSER_USERNAME = "ops"
    settings.DJANGO_SUPERUSER_PASSWORD = ""
    with pytest.raises(CommandError, match="DJANGO_SUPERUSER_PASSWORD"):
        run()
