import time

import openai
import pytest

from agents.models import Turn
from tests.factories import make_persona
from tests.integrations.slack.conftest import fake_slack, slack  # noqa: F401 - for tests across the edges
from tests.liveserver import LiveASGIServer


@pytest.fixture(scope="session")
def live_tron():
    from tron_site.asgi import application

    server = LiveASGIServer(application).start()
    yield server
    server.stop()
    # The server's threads took connections from the PostgreSQL pool; close it so the test database
    # can be dropped.
    from django.db import connection

    if hasattr(connection, "close_pool"):
        connection.close_pool()


@pytest.fixture
async def application():
    """The ASGI application, for Channels' WebsocketCommunicator."""
    from agents.llm import get_provider
    from tron_site.asgi import application

    yield application
    await get_provider().aclose()  # the consumers' turns ran on this test's event loop, which ends now


@pytest.fixture
def team(transactional_db):
    """Tony (the default) and Maya, committed so the live server's threads see them."""
    return {
        "tony": make_persona(name="Tony", role="CTO", system_prompt="You are Tony, the CTO.", sort_order=1),
        "maya": make_persona(name="Maya", role="CMO", system_prompt="You are Maya, the CMO.", sort_order=2),
    }


@pytest.fixture
def chat_setup(settings, upstream, live_tron, team):
    """Tron wired to the fake upstream through the openai provider, with a fresh script."""
    settings.TRON_LLM = "openai"
    settings.OPENAI_BASE_URL = upstream.base_url
    settings.OPENAI_API_KEY = "sk-test"
    settings.TRON_MODEL = "gpt-4o-mini"
    settings.TRON_LLM_TIMEOUT = 5
    settings.TRON_LLM_MAX_RETRIES = 0
    upstream.reset()
    yield upstream
    # The live server outlives the test: a turn it still records (one whose client has left) must end
    # before the test's database is emptied, or that transaction and the emptying deadlock on PostgreSQL.
    deadline = time.monotonic() + 10
    while Turn.objects.live().exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def sdk(chat_setup, live_tron):
    """The official openai SDK, pointed at Tron."""
    client = openai.OpenAI(base_url=f"{live_tron.url}/v1", api_key="unused", max_retries=0, timeout=30)
    yield client
    client.close()
