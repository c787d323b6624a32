import pytest

from integrations.models import Subdomain

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def base_domain(settings):
    settings.TRON_BASE_DOMAIN = "hellotron.com"


def ask(client, domain):
    return client.get("/internal/caddy-ask", {"domain": domain})


def test_the_base_domain_is_allowed(client):
    assert ask(client, "hellotron.com").status_code == 200


def test_a_registered_subdomain_is_allowed(client):
    Subdomain.objects.create(name="demo", target="http://127.0.0.1:3001")
    response = ask(client, "demo.hellotron.com")
    assert response.status_code == 200
    assert response.content == b""


def test_case_and_trailing_dot_do_not_matter(client):
    Subdomain.objects.create(name="Demo")
    assert ask(client, "DEMO.HelloTron.com.").status_code == 200


@pytest.mark.parametrize(
    "domain",
    [
        "other.hellotron.com",
        "example.com",
        "demo.example.com",
        "evilhellotron.com",
        "a.demo.hellotron.com",
        "demo.hellotron.com.evil.com",
    ],
)
def test_anything_else_is_refused(client, domain):
    Subdomain.objects.create(name="demo")
    response = ask(client, domain)
    assert response.status_code == 404
    assert "demo" not in response.content.decode()


def test_a_disabled_subdomain_is_refused(client):
    Subdomain.objects.create(name="old", enabled=False)
    assert ask(client, "old.hellotron.com").status_code == 404


def test_missing_domain_is_a_400(client):
    response = client.get("/internal/caddy-ask")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_it_is_not_in_the_public_schema(client):
    assert client.get("/internal/openapi.json").status_code in (200, 404)
    schema = client.get("/api/openapi.json").json()
    assert not any("caddy" in path for path in schema["paths"])
