"""With VAPI_SECRET set, only VAPI (which sends it) can post server messages."""

import pytest

from agents.models import CallerSession
from tests.integrations.vapi import post_vapi

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def secret(settings):
    settings.VAPI_SECRET = "vapi-s3cret-ñ"
    return "vapi-s3cret-ñ".encode().decode("latin-1")  # as an HTTP header carries it (bytes)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Vapi-Secret": "wrong"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic dmFwaQ=="},
        {"X-Vapi-Signature": "vapi-s3cret"},
    ],
)
def test_a_message_without_the_secret_is_refused_and_changes_nothing(live_tron, team, secret, headers):
    response = post_vapi(live_tron, "status-update-in-progress", headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_vapi_secret"
    assert "VAPI_SECRET" in response.json()["error"]["message"]
    assert not CallerSession.objects.exists()


@pytest.mark.parametrize("header", ["X-Vapi-Secret", "Authorization"])
def test_the_secret_as_vapis_header_or_a_bearer_token_is_let_in(live_tron, team, secret, header):
    value = secret if header == "X-Vapi-Secret" else f"Bearer {secret}"
    response = post_vapi(live_tron, "status-update-in-progress", {header: value.encode("latin-1")})
    assert response.status_code == 200
    assert CallerSession.objects.count() == 1


def test_without_a_secret_the_endpoint_is_open(live_tron, team, settings):
    settings.VAPI_SECRET = ""
    assert post_vapi(live_tron, "status-update-in-progress").status_code == 200


def test_the_secret_is_not_the_chat_key_and_the_chat_key_is_not_asked_here(live_tron, team, secret, settings):
    settings.TRON_CHAT_API_KEY = "chat-key"
    assert (
        post_vapi(live_tron, "status-update-in-progress", {"Authorization": "Bearer chat-key"}).status_code
        == 401
    )
    assert (
        post_vapi(
            live_tron, "status-update-in-progress", {"X-Vapi-Secret": secret.encode("latin-1")}
        ).status_code
        == 200
    )
