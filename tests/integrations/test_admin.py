"""Subdomains are configuration: operators add, edit and switch them off in the control panel."""

import pytest
from django.urls import reverse

from integrations.models import Subdomain

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:integrations_subdomain_changelist")
ADD = reverse("admin:integrations_subdomain_add")


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """admin_client creates a superuser per test; PBKDF2 at full strength costs most of a second each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def listed(response):
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_changelist_lists_subdomains(admin_client):
    demo = Subdomain.objects.create(name="demo", target="http://127.0.0.1:3001")
    assert listed(admin_client.get(CHANGELIST)) == [demo]


def test_changelist_searches_by_name(admin_client):
    demo = Subdomain.objects.create(name="demo")
    Subdomain.objects.create(name="staging")
    assert listed(admin_client.get(CHANGELIST + "?q=dem")) == [demo]


def test_change_page_saves_an_edit(admin_client):
    demo = Subdomain.objects.create(name="demo")
    url = reverse("admin:integrations_subdomain_change", args=[demo.pk])
    response = admin_client.post(url, {"name": "demo", "target": "http://127.0.0.1:4000"})
    assert response.status_code == 302
    demo.refresh_from_db()
    assert (demo.target, demo.enabled) == ("http://127.0.0.1:4000", False)


def test_add_page_creates_a_subdomain_with_a_lowercased_name(admin_client):
    response = admin_client.post(ADD, {"name": "Preview", "target": "", "enabled": "on"})
    assert response.status_code == 302
    assert Subdomain.objects.get().name == "preview"


def test_add_page_rejects_a_name_that_is_not_a_dns_label(admin_client):
    response = admin_client.post(ADD, {"name": "a.b", "enabled": "on"})
    assert response.status_code == 200
    assert not Subdomain.objects.exists()


def test_add_page_rejects_a_name_taken_in_another_case(admin_client):
    Subdomain.objects.create(name="demo")
    response = admin_client.post(ADD, {"name": "DEMO", "enabled": "on"})
    assert response.status_code == 200
    assert Subdomain.objects.count() == 1


def test_changelist_switches_subdomains_off_in_place(admin_client):
    demo = Subdomain.objects.create(name="demo")
    form = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(demo.pk),
        "_save": "Save",
    }
    response = admin_client.post(CHANGELIST, form)
    assert response.status_code == 302
    demo.refresh_from_db()
    assert demo.enabled is False
