"""Each edge's one table from the core's errors (agents.errors) to its protocol: every error has its
answer at every edge, and the answers are what the table says."""

import json

import pytest

from agents import errors
from integrations import chat_api, elevenlabs_ws
from integrations.slack import answer as slack_answer

KINDS = [
    errors.MessageTooLong,
    errors.NoPersona,
    errors.ConversationBusy,
    errors.OverBudget,
    errors.CallerLimited,
    errors.Overloaded,
    errors.ServerDraining,
    errors.ModelUnavailable,
    errors.UpstreamRejected,
    errors.UpstreamTimeout,
    errors.UpstreamFailed,
    errors.ServerStopped,
    errors.TurnLost,
    errors.InternalError,
]


def test_the_list_here_is_every_error_the_core_raises():
    assert set(KINDS) == set(errors.TurnError.__subclasses__())


@pytest.mark.parametrize(
    ("kind", "status", "error_type"),
    [
        (errors.MessageTooLong, 413, "invalid_request_error"),
        (errors.NoPersona, 503, "service_unavailable_error"),
        (errors.ConversationBusy, 409, "conflict_error"),
        (errors.OverBudget, 429, "insufficient_quota"),
        (errors.CallerLimited, 429, "rate_limit_error"),
        (errors.Overloaded, 503, "service_unavailable_error"),
        (errors.ServerDraining, 503, "service_unavailable_error"),
        (errors.ServerStopped, 503, "service_unavailable_error"),
        (errors.TurnLost, 503, "service_unavailable_error"),
        (errors.ModelUnavailable, 503, "service_unavailable_error"),
        (errors.UpstreamRejected, 400, "invalid_request_error"),
        (errors.UpstreamTimeout, 504, "timeout_error"),
        (errors.UpstreamFailed, 502, "upstream_error"),
        (errors.InternalError, 500, "server_error"),
    ],
)
def test_the_chat_api_answers_each_error_with_its_status_in_openais_envelope(kind, status, error_type):
    response = chat_api._llm_error_response(kind("Why.", retry_after=7))

    body = json.loads(response.content)["error"]
    assert (response.status_code, body["type"], body["code"], body["message"]) == (
        status,
        error_type,
        kind.code,
        "Why.",
    )
    assert response["Retry-After"] == "7"
    assert (response.get("x-should-retry") == "false") is (
        kind in (errors.UpstreamRejected, errors.OverBudget)
    )


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (errors.MessageTooLong, 1008),
        (errors.UpstreamRejected, 1008),
        (errors.ConversationBusy, 1013),
        (errors.OverBudget, 1013),
        (errors.CallerLimited, 1013),
        (errors.Overloaded, 1013),
        (errors.ModelUnavailable, 1013),
        (errors.ServerDraining, 1012),
        (errors.ServerStopped, 1012),
        (errors.NoPersona, 1011),
        (errors.UpstreamTimeout, 1011),
        (errors.UpstreamFailed, 1011),
        (errors.TurnLost, 1011),
        (errors.InternalError, 1011),
    ],
)
def test_the_elevenlabs_socket_sends_each_error_as_an_event_with_its_code(kind, code):
    assert elevenlabs_ws.error_code(kind("Why.")) == code


@pytest.mark.parametrize(
    ("kind", "reply"),
    [
        (errors.MessageTooLong, slack_answer.TOO_LONG),
        (errors.OverBudget, slack_answer.OVER_BUDGET),
        (errors.Overloaded, slack_answer.BUSY),
        *(
            (kind, slack_answer.APOLOGY)
            for kind in KINDS
            if kind not in (errors.MessageTooLong, errors.OverBudget, errors.Overloaded)
        ),
    ],
)
def test_slack_says_each_error_in_the_thread_as_a_short_reply(kind, reply):
    found = next(
        (slack_answer.REPLIES[k] for k in kind.__mro__ if k in slack_answer.REPLIES), slack_answer.APOLOGY
    )
    assert found == reply


@pytest.mark.parametrize("kind", KINDS)
def test_the_life_loop_records_each_error_as_the_runs_reason(kind, monkeypatch, db):
    from lifeloop import runner
    from lifeloop.models import ActivityRun
    from tests.factories import make_persona

    def fails(run):
        raise kind("Why.")

    monkeypatch.setitem(runner.ACTIVITIES, "journal", fails)
    run = runner.run_activity(make_persona(), "journal")

    assert run.status == ActivityRun.Status.FAILED
    assert run.error == ("Why." if kind in errors.REFUSED else "The model failed: Why.")
