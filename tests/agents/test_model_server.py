"""The model process's server and the provider that talks to it, over a real Unix socket, with a small
fake model in place of llama.cpp: the protocol, the arrival-order queue, cancellation and its count,
the watchdog, and what a client sees when the model process is down or dies."""

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field

import pytest

from agents import errors
from agents.llm import local, model_server
from agents.llm.base import LLMRequest, Usage
from agents.llm.local import LocalProvider
from agents.llm.model_server import ModelServer


@dataclass
class Record:
    prompt_tokens: list
    output_tokens: list = field(default_factory=list)
    finish_reason: str | None = None
    cancelled: bool = False


class FakeModel:
    """Answers "t1 t2 ..." one token at a time; `reply_tokens` tokens end with "stop". A request whose
    last message is in `gates` waits for that event before its first token."""

    name = "fake-model"

    def __init__(self):
        self.reply_tokens = 3
        self.token_seconds = 0.0
        self.gates: dict[str, threading.Event] = {}
        self.ignore_stop = False
        self.started: list[str] = []  # the requests it generated for, in order
        self.temperatures: list[float] = []
        self.last: Record | None = None
        self.text = ""  # of the request being answered
        self.active = 0  # generations running (a stuck one outlives its request)
        self.queue: list[int] = []  # the waiting count, each time the server reported it

    def fit_prompt(self, messages, max_tokens):
        text = self.text = messages[-1]["content"]
        if text == "too long":
            raise errors.UpstreamRejected("too long for the context", code="context_length_exceeded")
        return [0] * len(text.split()), max_tokens

    def generate(self, tokens, *, max_tokens, temperature, stop, emit):
        self.active += 1
        try:
            return self._generate(tokens, max_tokens, temperature, stop, emit)
        finally:
            self.active -= 1

    def _generate(self, tokens, max_tokens, temperature, stop, emit):
        text = self.text
        self.started.append(text)
        self.temperatures.append(temperature)
        record = self.last = Record(prompt_tokens=tokens)
        gate = self.gates.get(text)
        while gate is not None and not gate.wait(0.01):
            if stop.is_set() and not self.ignore_stop:
                record.cancelled = True
                return record
        for n in range(1, max_tokens + 1):
            if stop.is_set() and not self.ignore_stop:
                record.cancelled = True
                return record
            time.sleep(self.token_seconds)
            record.output_tokens.append(n)
            emit(f"t{n} ", n)
            if n == self.reply_tokens:
                record.finish_reason = "stop"
                return record
        record.finish_reason = "length"
        return record


@pytest.fixture
async def served(settings, tmp_path):
    settings.TRON_LOCAL_MODEL_SOCKET = tmp_path / "model.sock"
    model = FakeModel()
    stuck: list[str] = []
    server = ModelServer(
        model,
        queue_length=2,
        max_tokens=50,
        stall_seconds=5,
        on_stuck=stuck.append,
        on_waiting=model.queue.append,
    )
    listening = await server.serve(settings.TRON_LOCAL_MODEL_SOCKET)
    yield model, server, stuck
    listening.close()
    await listening.wait_closed()


def _request(text="hello there", **kwargs) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": text}], model="fake-model", **kwargs)


async def _collect(request):
    return [delta async for delta in LocalProvider().stream(request)]


async def _until(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_stream_is_accepted_then_text_then_the_models_usage_then_the_finish(served):
    model, _, _ = served
    accepted, *deltas = await _collect(_request("one two three", max_tokens=10))
    assert accepted.accepted and accepted.model == "fake-model"
    assert [d.text for d in deltas[:3]] == ["t1 ", "t2 ", "t3 "]
    assert deltas[3].usage == Usage(3, 3)
    assert deltas[4].finish_reason == "stop"
    assert len(deltas) == 5
    assert model.temperatures == [LocalProvider.default_temperature]  # none asked for


async def test_max_tokens_is_capped_by_the_server_and_ends_with_length(served):
    model, _, _ = served
    model.reply_tokens = 1000
    deltas = await _collect(_request(max_tokens=500, temperature=0.5))
    assert deltas[-2].usage.output_tokens == 50 and deltas[-1].finish_reason == "length"
    assert model.temperatures == [0.5]


async def test_requests_take_the_model_in_arrival_order(served):
    model, server, _ = served
    model.gates["first"] = gate = threading.Event()
    tasks = []
    for text in ["first", "second", "third"]:
        tasks.append(asyncio.create_task(_collect(_request(text))))
        await _until(lambda: len(model.started) + server.waiting == len(tasks))
    assert model.queue[-2:] == [1, 2]  # reported as it grew (the metrics' queue depth)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert model.started == ["first", "second", "third"]
    assert model.queue[-1] == 0
    assert all(r[-1].finish_reason == "stop" for r in results)


async def test_past_the_queue_length_a_request_gets_a_503_with_retry_after(served):
    model, server, _ = served
    model.gates["busy"] = gate = threading.Event()
    running = [asyncio.create_task(_collect(_request("busy")))]
    await _until(lambda: model.started == ["busy"])
    running += [asyncio.create_task(_collect(_request(text))) for text in ["a", "b"]]
    await _until(lambda: server.waiting == 2)
    with pytest.raises(errors.TurnError) as caught:
        await _collect(_request("one too many"))
    assert (type(caught.value), caught.value.code) == (errors.ModelUnavailable, "model_busy")
    assert caught.value.retry_after >= 1
    gate.set()
    await asyncio.gather(*running)
    assert "one too many" not in model.started


async def test_a_client_that_leaves_while_queued_leaves_the_queue(served):
    model, server, _ = served
    model.gates["busy"] = gate = threading.Event()
    first = asyncio.create_task(_collect(_request("busy")))
    await _until(lambda: model.started == ["busy"])
    request = _request("impatient")
    leaving = asyncio.create_task(_collect(request))
    await _until(lambda: server.waiting == 1)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    await _until(lambda: server.waiting == 0)
    gate.set()
    await first
    assert model.started == ["busy"]
    assert request.measured is None  # the model never had it: nothing to bill


async def test_time_in_the_queue_is_not_silence_of_the_model(served, settings, monkeypatch):
    model, server, _ = served
    settings.TRON_LLM_TIMEOUT = 1
    monkeypatch.setattr(model_server, "HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setattr(local, "HEARTBEAT_SECONDS", 0.2)
    model.reply_tokens, model.token_seconds = 25, 0.1  # 2.5 s of steady tokens
    first = asyncio.create_task(_collect(_request("long", max_tokens=25)))
    await _until(lambda: model.started == ["long"])
    second = await _collect(_request("patient", max_tokens=2))  # waits 2.5 s, more than the timeout
    assert second[-1].finish_reason == "length"
    assert (await first)[-1].finish_reason == "stop"


async def test_a_silent_model_times_out_with_a_504(served, settings):
    model, _, _ = served
    settings.TRON_LLM_TIMEOUT = 1
    model.gates["silent"] = gate = threading.Event()
    with pytest.raises(errors.TurnError) as caught:
        await _collect(_request("silent"))
    gate.set()
    assert (type(caught.value), caught.value.code) == (errors.UpstreamTimeout, "timeout")


async def test_a_client_that_leaves_mid_answer_gets_the_models_count(served):
    model, server, _ = served
    model.reply_tokens, model.token_seconds = 1000, 0.01
    request = _request("tell me more", max_tokens=50)
    stream = LocalProvider().stream(request)
    texts = 0
    async for delta in stream:
        texts += bool(delta.text)
        if texts == 2:
            break
    await stream.aclose()
    record = model.last
    assert record.cancelled
    assert request.measured == Usage(3, len(record.output_tokens))
    assert 2 <= len(record.output_tokens) < 50
    await _until(lambda: not server.turn.locked())  # the model is free for the next request
    assert (await _collect(_request(max_tokens=2)))[-1].finish_reason == "length"


async def test_a_prompt_that_cannot_fit_is_a_400_before_anything_streams(served):
    with pytest.raises(errors.TurnError) as caught:
        await _collect(_request("too long"))
    assert (type(caught.value), caught.value.code) == (errors.UpstreamRejected, "context_length_exceeded")


async def test_a_generation_that_stalls_or_ignores_its_stop_trips_the_watchdog(served, monkeypatch):
    model, server, stuck = served
    server.stall_seconds = 0.5
    model.gates["stall"] = gate = threading.Event()
    model.ignore_stop = True
    with pytest.raises(errors.TurnError):  # the fake watchdog does not exit: the connection just closes
        await _collect(_request("stall"))
    assert stuck and "no token for" in stuck[0]
    gate.set()
    await _until(lambda: model.active == 0)

    stuck.clear()
    server.stall_seconds = 30
    monkeypatch.setattr(model_server, "STOP_GRACE_SECONDS", 0.3)
    model.reply_tokens, model.token_seconds = 10_000, 0.1  # 5 s for its 50 tokens, stop or not
    stream = LocalProvider().stream(_request("stubborn", max_tokens=50))
    async for delta in stream:
        if delta.text:
            break
    await stream.aclose()
    await _until(lambda: stuck)
    assert "did not stop" in stuck[0]
    await _until(lambda: model.active == 0)


async def test_no_model_process_is_a_503_to_retry_soon(settings, tmp_path):
    settings.TRON_LOCAL_MODEL_SOCKET = tmp_path / "nobody.sock"
    with pytest.raises(errors.TurnError) as caught:
        await _collect(_request())
    assert (type(caught.value), caught.value.code) == (errors.ModelUnavailable, "model_unavailable")
    assert caught.value.retry_after == local.RESTART_RETRY_AFTER


async def test_a_model_process_that_dies_mid_answer_is_a_503_and_the_tokens_received_stand(
    settings, tmp_path
):
    settings.TRON_LOCAL_MODEL_SOCKET = tmp_path / "dying.sock"

    async def dies_after_one_token(reader, writer):
        await reader.readline()
        writer.write(b'{"event": "accepted", "model": "m", "prompt_tokens": 7}\n')
        writer.write(b'{"event": "text", "text": "Hel", "completion_tokens": 1}\n')
        writer.close()  # as the kernel does when the process is killed

    listening = await asyncio.start_unix_server(
        dies_after_one_token, path=str(settings.TRON_LOCAL_MODEL_SOCKET)
    )
    async with listening:
        request = _request()
        received = []
        with pytest.raises(errors.TurnError) as caught:
            async for delta in LocalProvider().stream(request):
                received.append(delta)
        assert (type(caught.value), caught.value.code) == (errors.ModelUnavailable, "model_unavailable")
        assert [d.text for d in received] == ["", "Hel"]
        assert request.measured == Usage(7, 1)


async def test_a_malformed_request_line_is_answered_with_a_400(served, settings):
    reader, writer = await asyncio.open_unix_connection(str(settings.TRON_LOCAL_MODEL_SOCKET))
    writer.write(b"this is not json\n")
    frame = json.loads(await reader.readline())
    writer.close()
    assert (frame["event"], frame["kind"]) == ("error", "UpstreamRejected")


async def test_with_no_queue_an_idle_model_still_answers(served):
    model, server, _ = served
    server.queue_length = 0
    assert (await _collect(_request()))[-1].finish_reason == "stop"
    model.gates["busy"] = gate = threading.Event()
    busy = asyncio.create_task(_collect(_request("busy")))
    await _until(lambda: model.started[-1:] == ["busy"])
    with pytest.raises(errors.TurnError) as caught:
        await _collect(_request("waits for nobody"))
    assert isinstance(caught.value, errors.ModelUnavailable)
    gate.set()
    await busy
