"""A rolling restart under load: two web nodes on one database, callers streaming turns on both, one
node stopped with SIGTERM mid-stream (tron_site/web.py). Its streams finish, it refuses new turns with
503 and Retry-After (never a dropped connection) until it exits 0, and the transcripts hold every
answered turn once. And the bound: a turn slower than TRON_DRAIN_SECONDS ends failed, recorded."""

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest

from agents.models import CallerSession, Channel, LLMCall, Message, Turn
from integrations import chat_api
from tests import daphne

pytestmark = pytest.mark.django_db(transaction=True)

TOKENS = [f"w{n} " for n in range(40)]  # 2 s a stream at 50 ms a token
CALLERS = 6


def stream_turn(url: str, caller: str, words: str, result: dict) -> dict:
    """One streaming chat turn on a connection of its own; what came back, in `result` as it comes."""
    body = {"model": "tony", "stream": True, "messages": [{"role": "user", "content": words}]}
    result.update(url=url, words=words, sent=time.monotonic())
    try:
        with httpx2.stream(
            "POST", f"{url}/v1/chat/completions", json=body, headers={"X-Request-ID": caller}, timeout=30
        ) as response:
            result["status"], result["at"] = response.status_code, time.monotonic()
            if response.status_code != 200:
                result["retry_after"] = response.headers.get("Retry-After")
                result["error"] = json.loads(response.read())["error"]
                return result
            text, done, failed = [], False, False
            for line in response.iter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    chunk = json.loads(line[6:])
                    failed = failed or "error" in chunk
                    for choice in chunk.get("choices", []):
                        text.append(choice["delta"].get("content") or "")
            result.update(text="".join(text), complete=done and not failed, ended=time.monotonic())
    except httpx2.TransportError as exc:
        result.update(transport_error=repr(exc), at=time.monotonic())
    return result


class Caller(threading.Thread):
    """Streams turns one after another, alternating nodes; a 503 with Retry-After (or a node that is
    gone) sends the same words to the other node."""

    def __init__(self, number: int, nodes: list, stop: threading.Event):
        super().__init__(daemon=True)
        self.caller, self.nodes, self.stop = f"c{number}", nodes, stop
        self.results: list[dict] = []
        self.answered: list[str] = []  # the words of each turn answered, in order

    def run(self):
        turn = 0
        while not self.stop.is_set():
            words = f"{self.caller} turn {turn}"
            node = turn % 2
            for _attempt in range(10):
                result = {"node": node}
                self.results.append(result)  # seen by the test while it streams
                stream_turn(self.nodes[node]["url"], self.caller, words, result)
                if result.get("status") == 200:
                    break
                node = 1 - node  # refused (or the node is gone): the other node
                if result.get("retry_after") is None:
                    time.sleep(0.05)
            if result.get("complete"):
                self.answered.append(words)
            turn += 1


def test_a_node_stopped_mid_stream_finishes_its_streams_refuses_new_turns_and_exits_0(
    tmp_path, upstream, team
):
    upstream.reset(tokens=TOKENS, token_interval=0.05)
    env = {"OPENAI_BASE_URL": upstream.base_url, "TRON_DRAIN_SECONDS": "20"}
    with daphne.two_servers(tmp_path, **env) as servers:
        nodes = [{"url": server.url} for server in servers]
        stopping, stop = servers[0], threading.Event()
        callers = [Caller(n, nodes, stop) for n in range(CALLERS)]
        for caller in callers:
            caller.start()

        def streaming_on_first() -> bool:  # a stream has just begun there: the drain will last a while
            return any(
                r["node"] == 0
                and r.get("status") == 200
                and "ended" not in r
                and time.monotonic() - r["at"] < 0.5
                for c in callers
                for r in c.results
            )

        # An ElevenLabs conversation on the stopping node, its reply streaming.
        talking = ws_conversation(stopping)
        talking.send(json.dumps({"type": "user_message", "text": "Tell me a story."}))
        while json.loads(talking.recv()).get("text_response_part", {}).get("type") != "delta":
            pass
        talking.settimeout(60)
        # Read as it comes: a closing server waits only briefly for the client's reply to its close.
        talked = ThreadPoolExecutor(max_workers=1).submit(until_closed, talking)
        deadline = time.monotonic() + 60
        while not (sum(len(c.answered) for c in callers) >= CALLERS and streaming_on_first()):
            assert time.monotonic() < deadline, "the load never got going"
            time.sleep(0.02)
        # The test's copy of the node's listening socket closes, so that once the node is gone a new
        # connection is refused at once rather than left waiting in the queue of a socket nobody serves.
        stopping.sock.close()
        signalled = time.monotonic()
        stopping.process.send_signal(signal.SIGTERM)
        # One more caller asks the stopping node at once, until it is refused (the callers above may
        # all be busy elsewhere while it drains).
        probes = []
        while stopping.process.poll() is None and not any(r.get("status") == 503 for r in probes):
            probes.append({"node": 0})
            stream_turn(nodes[0]["url"], "probe", f"probe {len(probes)}", probes[-1])
        assert stopping.process.wait(timeout=60) == 0
        exited = time.monotonic()
        time.sleep(2)  # the callers go on with the other node alone
        stop.set()
        for caller in callers:
            caller.join(timeout=60)

    # The socket heard its whole reply, then was told to connect again (1012) and closed.
    closed = talked.result(timeout=60)
    answer = next(f for f in closed[0] if f["type"] == "agent_response")["agent_response_event"]
    assert answer["agent_response"] == "".join(TOKENS) and told_to_reconnect(closed)

    results = [r for c in callers for r in c.results] + probes
    on_first = [r for r in results if r["node"] == 0]
    # Every stream that started on the stopped node finished, all its words and [DONE].
    started = [r for r in on_first if r.get("status") == 200]
    assert started and all(r.get("complete") and r["text"] == "".join(TOKENS) for r in started), started
    assert any(r["sent"] < signalled < r["ended"] for r in started)  # some were mid-stream at the signal
    # While it drained it answered: 503, Retry-After, OpenAI's envelope; a connection failed only once
    # it served nothing more (after its last answer).
    refused = [r for r in on_first if r.get("status") == 503]
    assert refused, "no caller asked the draining node"
    assert all(r["retry_after"] and r["error"]["code"] == "server_draining" for r in refused)
    assert all(signalled < r["at"] < exited for r in refused)
    assert {r.get("status") for r in on_first} <= {200, 503, None}
    last_answer = max(r["at"] for r in on_first if "status" in r)
    assert all(r["at"] >= last_answer for r in on_first if "transport_error" in r)
    assert not [r for r in results if r["node"] == 1 and r.get("status") != 200]  # the other node took them

    # The audit: each caller's transcript holds the words of every answered turn once, in order, each
    # with its whole answer; no turn is lost, doubled or left running, and no call is left open.
    for caller in callers:
        caller_id = f"req-{caller.caller}"
        words = list(
            Message.objects.filter(session__caller_id=caller_id, role="user")
            .order_by("id")
            .values_list("content", flat=True)
        )
        assert words == caller.answered, caller_id
        answers = Message.objects.filter(session__caller_id=caller_id, role="assistant").order_by("id")
        assert [m.content.strip() for m in answers] == ["".join(TOKENS).strip()] * len(words), caller_id
        turns = Turn.objects.filter(caller_id=caller_id)
        assert turns.count() == len(words) and set(turns.values_list("state", flat=True)) == {
            Turn.State.ANSWERED
        }
    assert not LLMCall.objects.filter(finished_at__isnull=True).exists()


def ws_connect(server, path="/v1/convai/conversation?agent_id=tony"):
    import websocket

    return websocket.create_connection(
        server.url.replace("http://", "ws://") + path, subprotocols=["convai"], timeout=10
    )


def until_closed(ws) -> tuple[list[dict], int]:
    """The server's frames up to its close, and the close's code."""
    import websocket

    frames = []
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return frames, int.from_bytes(data[:2], "big")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            frames.append(json.loads(data))


def told_to_reconnect(closed: tuple[list[dict], int]) -> bool:
    """The frames up to the close (`until_closed`) end with an error event with 1012 ("service
    restart"), hold no other error, and the close is a normal one."""
    frames, code = closed
    errors = [f["error_event"] for f in frames if f["type"] == "error"]
    return [e["code"] for e in errors] == [1012] and frames[-1]["type"] == "error" and code == 1000


def ws_conversation(server):
    """An ElevenLabs socket whose conversation has begun."""
    ws = ws_connect(server)
    ws.send(json.dumps({"type": "conversation_initiation_client_data"}))
    assert json.loads(ws.recv())["type"] == "conversation_initiation_metadata"
    return ws


def test_while_draining_each_edge_refuses_new_turns_and_a_turn_past_the_bound_ends_failed(
    tmp_path, upstream, team
):
    upstream.reset(tokens=[f"w{n} " for n in range(400)], token_interval=0.05)  # 20 s
    server = daphne.DaphneServer(tmp_path, OPENAI_BASE_URL=upstream.base_url, TRON_DRAIN_SECONDS="5").start()
    heard = threading.Event()
    events = []

    def listen():
        body = {"model": "tony", "stream": True, "messages": [{"role": "user", "content": "A long story."}]}
        with httpx2.stream(
            "POST",
            f"{server.url}/v1/chat/completions",
            json=body,
            headers={"X-Request-ID": "slow"},
            timeout=60,
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
                    if "w3" in line:
                        heard.set()

    listener = threading.Thread(target=listen, daemon=True)
    try:
        listener.start()
        assert heard.wait(30), "the turn never streamed"
        open_socket = ws_conversation(server)  # an ElevenLabs conversation open before the stop, idle
        open_socket_closed = ThreadPoolExecutor(max_workers=1).submit(until_closed, open_socket)

        server.process.send_signal(signal.SIGTERM)
        # Draining (the long turn keeps it so for TRON_DRAIN_SECONDS): not ready, and every edge
        # refuses a new turn in its own way.
        ready = _wait_for(
            lambda: (r := httpx2.get(f"{server.url}/health/ready", timeout=10)).status_code == 503 and r
        )
        assert "draining" in ready.json()["missing"]
        chat = httpx2.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "tony", "messages": [{"role": "user", "content": "Hi"}]},
            headers={"X-Request-ID": "late"},
            timeout=10,
        )
        assert chat.status_code == 503 and chat.headers["Retry-After"] == "1"
        assert chat.json()["error"]["code"] == "server_draining"
        vapi = httpx2.post(  # VAPI's custom LLM: the caller is asked to repeat, not dropped
            f"{server.url}/chat/completions",
            json={
                "model": "tony",
                "messages": [{"role": "user", "content": "Hello?"}],
                "call": {"id": "call-drain", "customer": {"number": "+14155551234"}},
            },
            timeout=10,
        )
        assert vapi.status_code == 200
        assert vapi.json()["choices"][0]["message"]["content"] == chat_api.DRAINING_SPOKEN
        assert told_to_reconnect(until_closed(ws_connect(server)))  # a new socket
        # An open, idle one: at once, not only at its next turn.
        assert told_to_reconnect(open_socket_closed.result(timeout=30))
        assert server.process.poll() is None  # all of that while it drained

        assert server.process.wait(timeout=30) == 0  # the stop was asked for: a clean exit
        listener.join(timeout=30)
    finally:
        server.stop()

    # The turn still running at the bound: its stream says why it ended, and it is recorded failed.
    error = json.loads(next(e for e in events if '"error"' in e))["error"]
    assert error["code"] == "server_stopped" and "TRON_DRAIN_SECONDS" in error["message"]
    turn = Turn.objects.get(caller_id="req-slow")
    assert turn.state == Turn.State.FAILED and "The server stopped before the turn finished" in turn.error
    call = LLMCall.objects.get(turn=turn)
    assert call.finished_at is not None and call.finish_reason == "cancelled"
    assert "TRON_DRAIN_SECONDS" in call.error
    said = Message.objects.get(turn=turn, role="assistant").content
    assert said.startswith("w0 w1 w2 w3") and len(said.split()) < 400  # what it had said, kept
    assert Message.objects.get(turn=turn, role="user").content == "A long story."
    # The refused turns stored nothing.
    assert not Message.objects.filter(content__in=["Hi", "Hello?"]).exists()
    # The idle socket's conversation ended as it closed, before the server stopped.
    assert not CallerSession.objects.filter(channel=Channel.ELEVENLABS, ended_at__isnull=True).exists()
    assert not Turn.objects.filter(caller_id="req-late").exists()


def _wait_for(condition, seconds=30.0):
    deadline = time.monotonic() + seconds  # a bound on waiting, not a latency check
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


def test_before_it_drains_a_node_says_it_is_not_ready_while_it_still_answers(tmp_path, upstream, team):
    """TRON_DRAIN_NOTICE_SECONDS: a proxy's health check sees 503 first and moves new callers away; a
    caller who reaches the node meanwhile is still answered, not refused."""
    upstream.reset(tokens=["Still", " here"])
    server = daphne.DaphneServer(
        tmp_path, OPENAI_BASE_URL=upstream.base_url, TRON_DRAIN_NOTICE_SECONDS="3", TRON_DRAIN_SECONDS="5"
    ).start()

    def ask(caller):
        return httpx2.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "tony", "messages": [{"role": "user", "content": "Hi"}]},
            headers={"X-Request-ID": caller},
            timeout=10,
        )

    try:
        server.process.send_signal(signal.SIGTERM)
        ready = _wait_for(
            lambda: (r := httpx2.get(f"{server.url}/health/ready", timeout=10)).status_code == 503 and r
        )
        assert "draining" in ready.json()["missing"]
        answered = ask("during-the-notice")
        assert answered.status_code == 200
        assert answered.json()["choices"][0]["message"]["content"] == "Still here"
        refused = _wait_for(lambda: (r := ask("after-the-notice")).status_code == 503 and r)
        assert refused.json()["error"]["code"] == "server_draining"
        assert server.process.wait(timeout=30) == 0
    finally:
        server.stop()
