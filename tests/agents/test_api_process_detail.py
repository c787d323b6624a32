"""GET /api/processes/{id}: one process with its metrics, transcript and LLM calls."""

from decimal import Decimal

import pytest

from tests.factories import ago, make_llm_call, make_message, make_process

pytestmark = pytest.mark.django_db


def test_one_process_comes_with_its_transcript_and_llm_calls(client, tony):
    process = make_process(tony, input_tokens=120, output_tokens=30, llm_calls=2, cost_usd=Decimal("0.25"))
    make_message(process, "user", "Hi Tony", created_at="2024-01-15T10:30:00Z")
    make_message(process, "assistant", "Hello!", created_at="2024-01-15T10:30:02Z")
    make_llm_call(
        process, model="gpt-4o-mini", cost_usd=Decimal("0.2"), ttft_ms=180, created_at=ago(minutes=2)
    )
    make_llm_call(
        process, model="gpt-4o", error="upstream timed out", finish_reason="error", created_at=ago(minutes=1)
    )

    body = client.get(f"/api/processes/{process.public_id}").json()

    assert body["id"] == process.public_id
    assert body["agent"] == "Tony"
    assert body["metrics"]["total_tokens"] == 150
    assert body["metrics"]["llm_calls"] == 2
    assert body["transcript"] == [
        {"role": "user", "content": "Hi Tony", "created_at": "2024-01-15T10:30:00Z"},
        {"role": "assistant", "content": "Hello!", "created_at": "2024-01-15T10:30:02Z"},
    ]
    first, second = body["llm_calls"]
    assert (first["model"], first["estimated_cost"], first["ttft_ms"], first["error"]) == (
        "gpt-4o-mini",
        0.2,
        180,
        "",
    )
    assert (second["model"], second["finish_reason"], second["error"]) == (
        "gpt-4o",
        "error",
        "upstream timed out",
    )
    assert {"provider", "input_tokens", "output_tokens", "usage_source", "duration_ms", "created_at"} <= set(
        first
    )


def test_it_reads_in_three_queries_however_long_the_transcript(client, tony, django_assert_num_queries):
    process = make_process(tony)
    for i in range(30):
        make_message(process, content=f"line {i}")
        make_llm_call(process)
    with django_assert_num_queries(3):
        assert len(client.get(f"/api/processes/{process.public_id}").json()["transcript"]) == 30


@pytest.mark.parametrize("process_id", ["00000000", "not-an-id", "x" * 300])
def test_an_unknown_id_is_a_404_in_the_envelope(client, tony, process_id):
    make_process(tony)
    response = client.get(f"/api/processes/{process_id}")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "not_found_error"
    assert "No process has the id" in error["message"]


def test_it_is_guarded_like_the_rest_of_the_api(client, tony, settings):
    process = make_process(tony)
    settings.TRON_API_TOKEN = "s3cret"
    assert client.get(f"/api/processes/{process.public_id}").status_code == 401
    ok = client.get(f"/api/processes/{process.public_id}", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
