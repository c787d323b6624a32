"""The embedded default provider: the local model, reached in its own process over a Unix socket.

The model runs in the model process (`manage.py serve_model`, started and restarted by `make run`; the
protocol is in agents/llm/model_server.py), so a native crash of llama.cpp costs the requests in flight
a 503, not the web server, and every web and worker process shares one loaded copy.

While the model process is down (starting, or restarting after a crash) requests get a 503 with
Retry-After. A request waits in the model's queue without a timeout of its own: the model process
sends a heartbeat while it waits, and TRON_LLM_TIMEOUT applies once the model has taken the request.
A consumer that stops iterating (client gone) closes its side of the socket; the model stops within a
token and reports what it used, which the stream leaves in `request.measured`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import time

from django.conf import settings

from .. import errors
from ..errors import ModelUnavailable, TurnError, UpstreamFailed, UpstreamTimeout
from .base import Delta, LLMProvider, LLMRequest, Usage
from .local_model import MODEL_ID, N_CTX
from .model_server import HEARTBEAT_SECONDS, MAX_REQUEST_BYTES, listening

# How long a closed stream waits for the model's own count of what it used before the count of the
# tokens it had received stands instead (the model stops within a token: milliseconds).
STOP_WAIT_SECONDS = 2.0
RESTART_RETRY_AFTER = 2  # seconds a client is told to wait while the model process (re)starts
# How long a command waits for the model process it started: the packaged model is up in about 1.5 s,
# a large file named by TRON_LOCAL_MODEL_PATH takes longer.
MODEL_START_SECONDS = 60
# /health/ready asks the model process for one token (`answers`); a process that sends nothing this long
# cannot answer. A good answer holds this long, so a proxy's health checks do not each take the model.
PROBE_SECONDS = 3.0
READY_HOLDS_SECONDS = 5.0

log = logging.getLogger(__name__)


def _unavailable(message: str) -> ModelUnavailable:
    return ModelUnavailable(message, retry_after=RESTART_RETRY_AFTER)


# The errors the model process may report (its frames name the class).
_REPORTED = {cls.__name__: cls for cls in (errors.ModelUnavailable, errors.UpstreamRejected, UpstreamFailed)}


def _reported(frame: dict) -> TurnError:
    kind = _REPORTED.get(frame.get("kind"), UpstreamFailed)
    return kind(frame["message"], code=frame["code"], retry_after=frame["retry_after"])


class LocalProvider(LLMProvider):
    name = "local"
    compact_prompts = True  # a 135M model follows a short persona prompt better than a page of one
    # A persona's temperature is chosen for large models; at 0.7 a 135M model wanders off the question
    # (it called Paris "L'Alma"), at 0.2 it stays on it. A client's own temperature is used as sent.
    default_temperature = 0.2
    supports_tools = False  # a 135M model cannot call tools reliably, and its chat template has none

    def default_model(self) -> str:
        return MODEL_ID

    def context_tokens(self) -> int:
        return N_CTX - settings.TRON_LOCAL_MAX_TOKENS

    answered_until = 0.0  # monotonic time until which the last good probe holds

    def unready(self) -> str | None:
        if time.monotonic() < self.answered_until:
            return None
        reason = answers(settings.TRON_LOCAL_MODEL_SOCKET)
        if reason is None:
            self.answered_until = time.monotonic() + READY_HOLDS_SECONDS
        return reason

    async def stream(self, request: LLMRequest):
        """accepted, then text deltas as tokens come, then the model's exact usage, then the finish
        reason ("stop" at the end-of-turn token, else "length")."""
        temperature = self.default_temperature if request.temperature is None else float(request.temperature)
        body = {"messages": request.messages, "max_tokens": request.max_tokens, "temperature": temperature}
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(settings.TRON_LOCAL_MODEL_SOCKET), limit=MAX_REQUEST_BYTES
            )
        except OSError:
            raise _unavailable("the local model is not running; it is starting or restarting") from None
        prompt_tokens = completion_tokens = None
        model = MODEL_ID
        finished = False
        try:
            writer.write(json.dumps(body).encode() + b"\n")
            while True:
                # Waiting in the queue, silence longer than a few heartbeats means the process is stuck.
                timeout = settings.TRON_LLM_TIMEOUT if prompt_tokens is not None else 3 * HEARTBEAT_SECONDS
                frame = await _next_frame(reader, timeout)
                event = frame.get("event")
                if event == "accepted":
                    prompt_tokens, completion_tokens, model = frame["prompt_tokens"], 0, frame["model"]
                    yield Delta(accepted=True, model=model)
                elif event == "text":
                    completion_tokens = frame["completion_tokens"]
                    yield Delta(text=frame["text"], model=model)
                elif event == "end":
                    finished = True
                    yield Delta(usage=Usage(frame["prompt_tokens"], frame["completion_tokens"]), model=model)
                    yield Delta(finish_reason=frame["finish_reason"])
                    return
                elif event == "error":
                    finished = True
                    raise _reported(frame)
        finally:
            if prompt_tokens is not None and not finished:  # closed early: the model's count of what it used
                request.measured = await _measured_after_cancel(
                    reader, writer, prompt_tokens, completion_tokens
                )
            writer.close()


async def _next_frame(reader: asyncio.StreamReader, timeout: float) -> dict:
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError:
        raise UpstreamTimeout(
            f"the local model produced nothing for {timeout:.0f}s", code="timeout"
        ) from None
    except (OSError, ValueError) as exc:  # ValueError: a line over the reader's limit
        raise _unavailable(f"the connection to the local model failed: {exc}") from None
    if not line:
        raise _unavailable("the local model process stopped; it restarts by itself")
    return json.loads(line)


async def _measured_after_cancel(reader, writer, prompt_tokens: int, completion_tokens: int) -> Usage:
    """Tell the model to stop (close our side) and read its final count; the tokens received stand
    when it does not come in time (a model process that just died)."""
    with contextlib.suppress(OSError, TurnError, TimeoutError, ValueError, KeyError):
        writer.write_eof()
        async with asyncio.timeout(STOP_WAIT_SECONDS):
            while True:
                frame = await _next_frame(reader, STOP_WAIT_SECONDS)
                if frame.get("event") == "text":
                    completion_tokens = frame["completion_tokens"]
                elif frame.get("event") == "end":
                    return Usage(frame["prompt_tokens"], frame["completion_tokens"])
    return Usage(prompt_tokens, completion_tokens)


def answers(path) -> str | None:
    """Whether the model process on `path` can answer: None when it takes a one-token request (or is
    busy answering others: it queues it, or its queue is full), else why not. Our side closes after
    the first frame, which cancels the request within a token."""
    request = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "temperature": 0}
    try:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.settimeout(PROBE_SECONDS)
            probe.connect(str(path))
            probe.sendall(json.dumps(request).encode() + b"\n")
            with probe.makefile("rb") as reader:
                line = reader.readline()
    except OSError as exc:  # not listening, refused, or silent for PROBE_SECONDS (socket.timeout)
        # /health/ready is open to anyone: the socket's path goes to the log, not into the answer.
        log.info("readiness: the local model process does not answer on %s: %s", path, exc)
        return (
            f"the local model process does not answer ({exc.strerror or exc}); it is starting or restarting"
        )
    try:
        frame = json.loads(line)
    except ValueError:
        return "the local model process closed the connection without answering"
    if frame.get("event") in ("accepted", "queued") or frame.get("code") == "model_busy":
        return None
    return f"the local model could not answer a test request: {frame.get('message', frame)}"


@contextlib.contextmanager
def model_process_while_needed():
    """For a command run without `make run` (`manage.py chat`): when the local provider is in use and no
    model process answers, start one for the duration of the block, and stop it afterwards."""
    if settings.TRON_LLM != "local" or listening(settings.TRON_LOCAL_MODEL_SOCKET):
        yield
        return
    log.info(
        "no model process answers on %s: starting one for this command", settings.TRON_LOCAL_MODEL_SOCKET
    )
    manage = str(settings.BASE_DIR / "manage.py")
    process = subprocess.Popen(
        [sys.executable, manage, "serve_model", "--socket", str(settings.TRON_LOCAL_MODEL_SOCKET)]
    )
    try:
        deadline = time.monotonic() + MODEL_START_SECONDS
        while not listening(settings.TRON_LOCAL_MODEL_SOCKET):
            if process.poll() is not None or time.monotonic() > deadline:
                raise _unavailable("the local model process could not be started (its errors are above)")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait()
