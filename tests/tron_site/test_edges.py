"""CORS and the JSON error envelope on every JSON endpoint."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/status", "/api/processes", "/api/sessions", "/api/nope"])
def test_api_responses_allow_any_origin(client, path):
    assert client.get(path)["Access-Control-Allow-Origin"] == "*"


def test_preflight_is_answered(client):
    response = client.options(
        "/api/processes",
        headers={
            "Origin": "http://dashboard.local",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response["Access-Control-Allow-Methods"]
    assert "Authorization" in response["Access-Control-Allow-Headers"]


def test_error_responses_carry_cors_headers_too(client):
    response = client.get("/api/processes?limit=0")
    assert response.status_code == 400
    assert response["Access-Control-Allow-Origin"] == "*"


def test_unknown_api_path_is_a_json_404(client):
    response = client.get("/api/does-not-exist")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"message": "Not Found", "type": "not_found_error", "param": None, "code": None}
    }


def test_wrong_method_is_a_json_405(client):
    response = client.post("/api/status")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "method_not_allowed"
    assert "GET" in response["Allow"]


def test_health_wrong_method_is_a_json_405(client):
    response = client.delete("/health")
    assert response.status_code == 405
    assert "error" in response.json()


def test_a_crash_is_a_json_500_not_a_traceback(client, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr("agents.models.ProcessQuerySet.active", boom)
    client.raise_request_exception = False
    response = client.get("/api/status")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["type"] == "server_error"
    assert "kaboom" not in body["error"]["message"]


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/openapi.json").json()
    assert {"/api/status", "/api/processes", "/api/sessions"} <= set(schema["paths"])
    assert client.get("/api/docs").status_code == 200


def test_the_control_panel_docs_also_describe_the_life_loop_trigger_and_metrics(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    trigger = paths["/internal/life/trigger"]
    assert set(trigger) == {"get", "post"}
    assert {p["name"] for p in trigger["get"]["parameters"]} == {"activity", "persona"}
    (content_type,) = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert content_type == client.get("/metrics")["Content-Type"]


def test_admin_pages_are_left_as_html(client):
    response = client.get("/admin/")
    assert response.status_code == 302


def test_the_chat_api_has_its_own_schema_and_docs(client):
    schema = client.get("/v1/openapi.json").json()
    assert {"/chat/completions", "/v1/chat/completions", "/v1/models", "/v1/elevenlabs-llm"} <= set(
        schema["paths"]
    )
    assert client.get("/v1/docs").status_code == 200


def test_chat_paths_answer_unknown_routes_in_the_envelope(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_chat_completions_only_accepts_post(client):
    response = client.get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "method_not_allowed"


def test_health_answers_head_for_uptime_monitors(client):
    response = client.head("/health")
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_health_refuses_other_methods_with_a_405_in_the_envelope(method):
    from django.test import Client

    # enforce_csrf_checks: as a browser or curl meets it, where POST used to be CSRF's 403
    response = getattr(Client(enforce_csrf_checks=True), method)("/health")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD"


def test_cors_advertises_only_the_methods_that_exist(client):
    response = client.options("/api/processes", headers={"Access-Control-Request-Method": "GET"})
    assert response["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"


def test_the_landing_page_says_what_this_is_and_links_the_way_on(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "OpenAI-compatible chat API" in html
    for link in (
        'href="/admin/"',
        'href="/api/docs"',
        'href="/v1/docs"',
        'href="/health"',
        'href="/metrics"',
    ):
        assert link in html


@pytest.mark.parametrize("path", ["/api/docs", "/v1/docs"])
def test_the_api_docs_load_swagger_from_this_server_not_a_cdn(client, path):
    html = client.get(path).content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    assert "https://" not in html
