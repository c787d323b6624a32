"""GET /metrics: Prometheus' text format, counted as turns happen, added up over every process."""

import time

import httpx2
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.models import CallerSession
from tests.daphne import DaphneServer
from tests.factories import make_process, make_session
from tests.liveserver import post_chat


def samples(text: str) -> dict:
    """{(sample name, (label, value) pairs sorted): value} of a scrape."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response.content.decode())


def grew(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


TONY = {"persona": "Tony", "provider": "openai"}


def test_a_turn_is_counted_with_its_tokens_cost_and_time_to_first_token(client, sdk, chat_setup):
    before = scrape(client)
    sdk.chat.completions.create(model="tony", messages=[{"role": "user", "content": "Hi"}])
    after = scrape(client)

    assert grew(before, after, "tron_turns_total", outcome="answered", **TONY) == 1
    assert grew(before, after, "tron_llm_calls_total", **TONY) == 1
    assert grew(before, after, "tron_tokens_total", kind="input", **TONY) == 42  # the upstream's usage
    assert grew(before, after, "tron_tokens_total", kind="output", **TONY) == 3
    # gpt-4o-mini: 42 x $0.15 + 3 x $0.60 per million tokens
    assert grew(before, after, "tron_cost_usd_total", **TONY) == pytest.approx(42 * 0.15e-6 + 3 * 0.6e-6)
    assert grew(before, after, "tron_time_to_first_token_seconds_count", **TONY) == 1
    assert grew(before, after, "tron_time_to_first_token_seconds_bucket", le="+Inf", **TONY) == 1


def test_a_failed_turn_is_counted_by_its_error_type(client, sdk, chat_setup):
    chat_setup.reset(status=500)
    before = scrape(client)
    with pytest.raises(openai.APIStatusError):
        sdk.chat.completions.create(model="tony", messages=[{"role": "user", "content": "Hi"}])
    after = scrape(client)
    assert grew(before, after, "tron_errors_total", type="upstream_error") == 1
    assert grew(before, after, "tron_turns_total", outcome="failed", **TONY) == 1
    assert grew(before, after, "tron_time_to_first_token_seconds_count", **TONY) == 0


def test_open_streams_are_counted_while_they_stream(client, live_tron, chat_setup):
    chat_setup.reset(first_token_delay=10)  # accepted at once, then silent while we look
    wait_for(lambda: scrape(client)[("tron_open_streams", ())] == 0)  # an earlier test's stream may be ending
    body = {"model": "tony", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    with httpx2.stream("POST", f"{live_tron.url}/v1/chat/completions", json=body, timeout=30) as response:
        lines = response.iter_lines()  # kept: a dropped iterator closes the response
        assert next(lines).startswith("data: ")  # the role chunk: the stream is open
        assert scrape(client)[("tron_open_streams", ())] == 1
    wait_for(lambda: scrape(client)[("tron_open_streams", ())] == 0)


def wait_for(condition, tries=300):
    """Poll `condition` (0.1 s apart, a bound on waiting, not a latency check) until it holds."""
    for _ in range(tries):
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("the condition never held")


def test_sessions_open_and_processes_active_are_read_from_the_database(client, team):
    make_session("+14155550001", process=make_process(team["tony"]))
    make_session(
        "+14155550002",
        process=make_process(team["tony"], status="completed"),
        ended_at="2024-01-01T00:00:00Z",
    )
    metrics = scrape(client)
    assert metrics[("tron_open_sessions", ())] == CallerSession.objects.open().count() == 1
    assert metrics[("tron_active_processes", ())] == 1


def test_the_local_model_queue_depth_is_exposed(client, team):
    assert scrape(client)[("tron_local_model_queue_depth", ())] == 0


def test_metrics_need_the_api_token_when_it_is_set(client, team, settings):
    settings.TRON_API_TOKEN = "s3cret"
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_metrics_refuse_other_methods_in_the_envelope(client, team):
    response = client.post("/metrics")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "method_not_allowed"


def test_every_web_process_answers_for_all_of_them(tmp_path, upstream, team):
    """Two Daphne processes, as `make run` starts on two cores: turns served by either are in the
    scrape of each."""
    upstream.reset()
    env = {"OPENAI_BASE_URL": upstream.base_url}
    first, second = DaphneServer(tmp_path, **env).start(), DaphneServer(tmp_path, **env).start()
    try:
        before = samples(httpx2.get(f"{first.url}/metrics").text)
        for server in (first, second, second):
            assert (
                post_chat(
                    server, {"model": "tony", "messages": [{"role": "user", "content": "Hi"}]}
                ).status_code
                == 200
            )
        for server in (first, second):
            after = samples(httpx2.get(f"{server.url}/metrics").text)
            assert grew(before, after, "tron_turns_total", outcome="answered", **TONY) == 3
            assert grew(before, after, "tron_tokens_total", kind="output", **TONY) == 9
    finally:
        first.stop()
        second.stop()
