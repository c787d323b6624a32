"""Static files under the real server: collected by `collectstatic`, served by Daphne (ServeStatic)."""

import gzip

import httpx2
import pytest

from tests.daphne import DaphneServer


@pytest.fixture(scope="module")
def daphne(tmp_path_factory, django_db_setup):
    server = DaphneServer(tmp_path_factory.mktemp("data")).start()
    yield server
    server.stop()


def test_the_admin_css_is_served(daphne):
    response = httpx2.get(f"{daphne.url}/static/admin/css/base.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "--primary" in response.text  # Django's admin theme variables
    assert "max-age" in response.headers["cache-control"]


def test_the_admin_login_page_links_the_css_it_is_styled_with(daphne):
    html = httpx2.get(f"{daphne.url}/admin/login/").text
    assert 'href="/static/admin/css/base.css"' in html


def test_static_files_go_out_gzipped_to_clients_that_take_it(daphne):
    headers = {"Accept-Encoding": "gzip"}
    with httpx2.stream("GET", f"{daphne.url}/static/admin/js/core.js", headers=headers) as response:
        body = b"".join(response.iter_raw())  # as sent, not decoded
    assert response.headers["content-encoding"] == "gzip"
    assert b"function" in gzip.decompress(body)


def test_swagger_ui_is_served_from_here(daphne):
    response = httpx2.get(f"{daphne.url}/static/ninja/swagger-ui-bundle.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]


def test_a_missing_static_file_is_a_404(daphne):
    assert httpx2.get(f"{daphne.url}/static/admin/css/no-such-file.css").status_code == 404


def test_head_of_a_static_file_has_no_body(daphne):
    response = httpx2.head(f"{daphne.url}/static/admin/css/base.css")
    assert response.status_code == 200
    assert response.content == b""
