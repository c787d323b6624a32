import pytest

from integrations.models import Subdomain

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-token"


@pytest.fixture
def token(settings):
    settings.TRON_API_TOKEN = TOKEN
    return TOKEN


@pytest.mark.parametrize(
    "path",
    [
        "/api/status",
        "/api/processes",
        "/api/sessions",
        "/api/openapi.json",
        "/api/docs",
        "/internal/anything",
    ],
)
def test_protected_paths_need_the_token(client, token, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer wrong", "Basic czNjcmV0LXRva2Vu", TOKEN, "Bearer "])
def test_a_wrong_token_is_refused(client, token, header):
    assert client.get("/api/status", headers={"Authorization": header}).status_code == 401


@pytest.mark.parametrize("path", ["/api/status", "/api/processes", "/api/sessions", "/api/openapi.json"])
def test_the_right_token_is_accepted(client, token, path):
    assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_health_stays_open(client, token):
    assert client.get("/health").status_code == 200


def test_caddy_ask_stays_open(client, token, settings):
    settings.TRON_BASE_DOMAIN = "example.com"
    Subdomain.objects.create(name="demo")
    assert client.get("/internal/caddy-ask?domain=demo.example.com").status_code == 200


def test_without_a_token_the_api_is_open(client):
    assert client.get("/api/status").status_code == 200


def test_a_staff_user_logged_into_the_admin_may_browse_the_api(admin_client, token):
    assert admin_client.get("/api/docs").status_code == 200
    assert admin_client.get("/api/status").status_code == 200


def test_preflight_needs_no_token(client, token):
    response = client.options(
        "/api/status", headers={"Origin": "http://dash", "Access-Control-Request-Method": "GET"}
    )
    assert response.status_code == 204


async def test_the_async_stack_checks_the_token_too(async_client, token):
    """Under ASGI the middleware runs natively async: same answers as the sync stack."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    try:
        assert (await async_client.get("/api/status")).status_code == 401
        ok = await async_client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert ok["Access-Control-Allow-Origin"] == "*"
    finally:
        # The test client keeps the connection its sync thread opened; give it back (PostgreSQL pool).
        await sync_to_async(connections.close_all)()


def test_the_chat_api_is_not_behind_the_api_token(client, token):
    assert client.get("/v1/models").status_code == 200


def test_a_script_prefix_does_not_dodge_the_token(client, token, settings):
    settings.FORCE_SCRIPT_NAME = "/tron"
    assert client.get("/api/status", SCRIPT_NAME="/tron").status_code == 401
