"""What is refused before any view reads it, on both HTTP handlers (tron_site/asgi.py): a URL with a NUL
character (PostgreSQL cannot compare text with one: it was a 500 there)."""

import httpx2
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/a%00b",
        "/api/processes/a%00b",
        "/api/sessions?agent=a%00b",
        "/api/processes?agent=a%00b",
        "/internal/caddy-ask?domain=a%00b.example.com",
        "/internal/life/trigger?activity=journal&persona=a%00b",
    ],
)
def test_a_nul_in_a_url_is_a_400_in_the_envelope(live_tron, team, settings, path):
    settings.TRON_BASE_DOMAIN = "example.com"
    response = httpx2.get(f"{live_tron.url}{path}", timeout=10)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "NUL" in error["message"]


def test_a_nul_in_a_page_url_is_a_plain_400(live_tron, team):
    response = httpx2.get(f"{live_tron.url}/admin/login/?next=/a%00b", timeout=10)
    assert response.status_code == 400 and "NUL" in response.text
