import json

import pytest

from tests.factories import make_persona
from tests.lifeloop.servers import LocalServer


@pytest.fixture(scope="session")
def _edge():
    server = LocalServer()
    yield server
    server.stop()


@pytest.fixture
def edge(_edge):
    """The local server standing in for feeds, the social API and Slack, with no routes yet."""
    _edge.reset()
    return _edge


@pytest.fixture
def llm(settings, upstream, transactional_db):
    """The engine wired to the fake upstream; committed rows, since the engine works on its own threads."""
    settings.TRON_LLM = "openai"
    settings.OPENAI_BASE_URL = upstream.base_url
    settings.OPENAI_API_KEY = "sk-test"
    settings.TRON_MODEL = "gpt-4o-mini"
    settings.TRON_LLM_TIMEOUT = 5
    settings.TRON_LLM_MAX_RETRIES = 0
    settings.TRON_NEWS_FEEDS = []
    settings.TRON_SOCIAL_API_URL = ""
    settings.TRON_LIFE_SLACK_CHANNEL = ""
    upstream.reset()
    return upstream


@pytest.fixture
def crew(llm):
    """Tony (CTO, life loop on) with Sarah reporting to him, and Maya, his peer."""
    tony = make_persona(
        name="Tony",
        role="CTO",
        life_enabled=True,
        focus_areas=["engineering", "ai"],
        system_prompt="You are Tony, the CTO.",
        sort_order=1,
    )
    maya = make_persona(
        name="Maya", role="CMO", life_enabled=True, system_prompt="You are Maya.", sort_order=2
    )
    sarah = make_persona(name="Sarah", role="Tech Lead", kind="specialist", reports_to=tony, sort_order=11)
    return {"tony": tony, "maya": maya, "sarah": sarah}


def reply(text: str) -> dict:
    """One scripted model answer (for upstream.queue)."""
    return {"tokens": [text]}


def json_reply(data: dict) -> dict:
    return reply(json.dumps(data))


def prompt_of(record) -> str:
    """The activity's own words in a recorded upstream request (the last user message)."""
    return [m for m in record.body["messages"] if m["role"] == "user"][-1]["content"]


def system_of(record) -> str:
    return "\n".join(m["content"] for m in record.body["messages"] if m["role"] == "system")
