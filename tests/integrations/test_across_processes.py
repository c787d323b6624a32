"""A call across web processes, as `make run` serves it on two cores: nothing about a call lives only in
the process that saw its webhook, and live conversations reach each other through the channel layer:
Redis when REDIS_URL is set, else the layer that spans one machine's processes (tron_site/channel_layer.py)."""

import json
import os

import pytest

from agents.models import CallerSession, Channel
from tests import daphne
from tests.integrations.vapi import CALL_ID, CALLER, post_vapi
from tests.liveserver import post_chat
from tests.net import redis_is_up

pytestmark = pytest.mark.django_db(transaction=True)

# A Redis database of its own, and another for the PostgreSQL pass (CI runs both passes at once), so other
# runs' keys never meet these.
REDIS_URL = f"redis://127.0.0.1:6379/{13 if os.environ.get('DATABASE_URL') else 14}"


@pytest.fixture(params=["no Redis", "Redis"])
def two_servers(request, tmp_path, upstream, team):
    redis_url = REDIS_URL if request.param == "Redis" else ""
    if redis_url and not redis_is_up():
        pytest.skip("no Redis on 127.0.0.1:6379 (.ci/run starts one)")
    upstream.reset()
    env = {"OPENAI_BASE_URL": upstream.base_url, "REDIS_URL": redis_url}
    with daphne.two_servers(tmp_path, **env) as servers:
        yield servers


def test_a_calls_webhook_and_its_chat_requests_may_reach_different_processes(two_servers):
    first, second = two_servers
    assert post_vapi(first, "status-update-in-progress").status_code == 200

    reply = post_chat(
        second,
        {"model": "tony", "messages": [{"role": "user", "content": "hi"}]},
        {"X-Vapi-Call-ID": CALL_ID},
    )

    assert reply.status_code == 200 and reply.headers["X-Tron-Caller-ID"] == CALLER
    session = CallerSession.objects.get()
    assert session.process.llm_calls == 1 and reply.headers["X-Tron-Process-ID"] == session.process.public_id


def test_a_newer_conversation_on_another_process_replaces_the_older(two_servers):
    import websocket

    first, second = two_servers
    init = json.dumps({"type": "conversation_initiation_client_data", "user_id": "ada"})
    older = websocket.create_connection(
        first.url.replace("http", "ws") + "/v1/convai/conversation", timeout=10
    )
    older.send(init)
    assert json.loads(older.recv())["type"] == "conversation_initiation_metadata"

    newer = websocket.create_connection(
        second.url.replace("http", "ws") + "/v1/convai/conversation", timeout=10
    )
    newer.send(init)
    assert json.loads(newer.recv())["type"] == "conversation_initiation_metadata"

    notice = json.loads(older.recv())
    assert notice["type"] == "error" and notice["error_event"]["error_type"] == "replaced"
    newer.close()
    older.close()
    sessions = CallerSession.objects.filter(channel=Channel.ELEVENLABS, caller_id="elevenlabs-user-ada")
    assert sessions.count() == 2 and sessions.filter(ended_at__isnull=True).count() <= 1
