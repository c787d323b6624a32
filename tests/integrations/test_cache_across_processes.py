"""What a web process keeps in memory (agents/cache.py) follows edits made in another process within
TRON_CACHE_SECONDS: a persona saved in the admin reaches every web process's next turns."""

import time

import pytest

from agents.models import Persona
from tests.daphne import DaphneServer
from tests.liveserver import post_chat

pytestmark = pytest.mark.django_db(transaction=True)

CACHE_SECONDS = 2


def test_a_persona_saved_in_another_process_reaches_a_web_processs_turns_within_the_cache_time(
    tmp_path, upstream, team
):
    upstream.reset()
    server = DaphneServer(tmp_path, OPENAI_BASE_URL=upstream.base_url, TRON_CACHE_SECONDS=str(CACHE_SECONDS))
    server.start()
    try:

        def prompt_seen() -> str:
            post_chat(server, {"model": "tony", "messages": [{"role": "user", "content": "hi"}]})
            return upstream.last.body["messages"][0]["content"]

        assert prompt_seen() == "You are Tony, the CTO."  # now kept by the server
        tony = Persona.objects.get(name="Tony")
        tony.system_prompt = "You are Tony, back from holiday."
        tony.save()  # as the admin saves it, in this (another) process
        saved = time.monotonic()
        while prompt_seen() != "You are Tony, back from holiday.":
            assert time.monotonic() - saved < CACHE_SECONDS + 20, "the edit never reached the web process"
            time.sleep(0.2)
    finally:
        server.stop()
