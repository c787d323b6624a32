"""What is refused before any view reads it, on both HTTP handlers (tron_site/asgi.py): a URL with a NUL
character (PostgreSQL cannot compare text with one: it was a 500 there), and a body declared larger than
the server takes (it was read in full, to a temporary file, before the key was even checked)."""

import socket
from urllib.parse import urlsplit

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


def _declared(server, path: str, length: int, headers: dict | None = None) -> tuple[int, bytes]:
    """POST headers that declare `length` bytes of body, and none of it: the answer, read at once, or a
    timeout while the server waits for the body."""
    address = urlsplit(server.url)
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {address.hostname}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := connection.recv(65536)):
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
        while len(body) < int(fields.get(b"content-length", fields.get(b"Content-Length", 0))):
            body += connection.recv(65536)
    return int(head.split()[1]), body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/vapi/events", "/api/status"])
def test_a_body_declared_too_large_is_a_413_before_it_is_read(live_tron, team, settings, path):
    settings.TRON_CHAT_API_KEY = settings.VAPI_SECRET = settings.TRON_API_TOKEN = "key"  # a stranger's
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    status, body = _declared(live_tron, path, 10**9)

    assert status == 413 and b"TRON_MAX_BODY_BYTES" in body and b"invalid_request_error" in body
