"""The local model's own process: one loaded model serving every web and worker process, in arrival order.

A native crash or hang of llama.cpp must not take the web server down, and one loaded copy should serve
all web processes, so the model runs here, in a process `make run` supervises (tron_site/serve.py), and
the others talk to it over a Unix socket (agents/llm/local.py). One connection carries one request:

    client → {"messages": [...], "max_tokens": n, "temperature": t}   one JSON line
             then nothing; closing its side (shutdown(SHUT_WR) or close) cancels the request
    server → JSON lines, each with an "event":
             queued    while the request waits its turn, every HEARTBEAT_SECONDS
             accepted  {"model", "prompt_tokens"}: the model took it and its prompt fits
             text      {"text", "completion_tokens"}
             end       {"finish_reason": "stop" | "length" | "cancelled", "prompt_tokens", "completion_tokens"}
             error     {"kind", "code", "message", "retry_after"}: kind (an agents.errors class) is
                       UpstreamRejected for a prompt that cannot fit, ModelUnavailable when the queue
                       is full, UpstreamFailed when generation failed

Requests take the model one at a time in arrival order (asyncio.Lock wakes its waiters first come,
first served); past `queue_length` waiting requests a new one is refused at once. A request whose
client leaves while waiting leaves the queue. The heartbeats tell a waiting client the process is alive,
so time in the queue is not silence of the model.

Watchdog: a generation that produces no token for `stall_seconds` (TRON_LLM_TIMEOUT), or does not stop
within STOP_GRACE_SECONDS of its client leaving, means llama.cpp is stuck in native code, where no
Python can interrupt it: the process exits with status 70 and the supervisor starts a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
from pathlib import Path

from ..errors import ModelUnavailable, TurnError, UpstreamFailed, UpstreamRejected

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
STOP_GRACE_SECONDS = 10.0
WATCHDOG_EXIT_STATUS = 70  # EX_SOFTWARE
MAX_REQUEST_BYTES = 16 * 1024 * 1024  # one request line; the chat API limits bodies long before this


def frame(event: str, **fields) -> bytes:
    return json.dumps({"event": event, **fields}, ensure_ascii=False).encode() + b"\n"


def error_frame(error: TurnError) -> bytes:
    kind = type(error).__name__
    return frame("error", kind=kind, code=error.code, message=error.message, retry_after=error.retry_after)


class ModelServer:
    """Serves `model` (an object with `name`, `fit_prompt(messages, max_tokens)` and
    `generate(tokens, max_tokens=, temperature=, stop=, emit=)`, as agents/llm/local_model.LocalModel)."""

    def __init__(
        self,
        model,
        *,
        queue_length: int,
        max_tokens: int,
        stall_seconds: float,
        on_stuck=None,
        on_waiting=None,
    ):
        self.model = model
        self.queue_length = queue_length
        self.max_tokens = max_tokens
        self.stall_seconds = stall_seconds
        self.on_stuck = on_stuck or _exit_stuck
        self.on_waiting = on_waiting or (lambda waiting: None)  # told the queue's length when it changes
        self.turn = asyncio.Lock()  # FIFO: its waiters are woken in the order they came
        self.waiting = 0
        self.seconds_per_request = 2.0  # a running average, for the Retry-After of a full queue

    async def serve(self, path: Path) -> asyncio.Server:
        previous = os.umask(0o077)  # the socket is this user's only: it drives the model
        try:
            return await asyncio.start_unix_server(self.handle, path=str(path), limit=MAX_REQUEST_BYTES)
        finally:
            os.umask(previous)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read_request(reader)
            if self.turn.locked() and self.waiting >= self.queue_length:
                retry_after = max(1, math.ceil(self.seconds_per_request * (self.waiting + 1)))
                raise ModelUnavailable(
                    f"the local model is busy: {self.waiting} requests are waiting for it",
                    code="model_busy",
                    retry_after=retry_after,
                )
            gone = asyncio.ensure_future(reader.read())  # b"" once the client closes its side
            try:
                if await self._wait_for_turn(writer, gone):
                    try:
                        await self._generate(request, writer, gone)
                    finally:
                        self.turn.release()
            finally:
                gone.cancel()
        except TurnError as error:
            _send(writer, error_frame(error))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to tell it
        except Exception as exc:  # a bug of ours: the client gets an answer, the log the traceback
            log.exception("the model server failed on a request")
            _send(
                writer,
                error_frame(UpstreamFailed(f"the model server failed: {exc}", code="generation_failed")),
            )
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()
                await writer.wait_closed()

    async def _read_request(self, reader: asyncio.StreamReader) -> dict:
        try:
            request = json.loads(await reader.readline())
        except (ValueError, asyncio.LimitOverrunError) as exc:
            raise UpstreamRejected(f"a malformed request reached the model server: {exc}") from None
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            raise UpstreamRejected("a request to the model server needs a list of messages")
        return request

    async def _wait_for_turn(self, writer: asyncio.StreamWriter, gone: asyncio.Future) -> bool:
        """Queue behind the requests that came first; False when the client left while waiting."""
        self.waiting += 1
        self.on_waiting(self.waiting)
        acquiring = asyncio.ensure_future(self.turn.acquire())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {acquiring, gone}, timeout=HEARTBEAT_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if acquiring in done:
                    return True
                if gone in done:
                    return False
                writer.write(frame("queued", waiting=self.waiting))
        finally:
            self.waiting -= 1
            self.on_waiting(self.waiting)
            if not acquiring.done():
                acquiring.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acquiring
                if acquiring.done() and not acquiring.cancelled():
                    self.turn.release()  # acquired as it was being cancelled: hand it on

    async def _generate(self, request: dict, writer: asyncio.StreamWriter, gone: asyncio.Future) -> None:
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        gone.add_done_callback(lambda _: stop.set())
        progress = {"at": time.monotonic(), "completion_tokens": 0}
        started = time.monotonic()
        max_tokens = _bounded(request.get("max_tokens"), self.max_tokens)
        temperature = max(0.0, float(request.get("temperature") or 0.0))  # the client sends its default
        # Before "accepted": a prompt that cannot fit is then a plain 400, streaming or not.
        tokens, max_tokens = await asyncio.to_thread(self.model.fit_prompt, request["messages"], max_tokens)
        writer.write(frame("accepted", model=self.model.name, prompt_tokens=len(tokens)))

        def emit(text: str, completion_tokens: int) -> None:  # in the generation thread
            progress["at"] = time.monotonic()
            progress["completion_tokens"] = completion_tokens
            if text:
                loop.call_soon_threadsafe(
                    _send, writer, frame("text", text=text, completion_tokens=completion_tokens)
                )

        generation = asyncio.ensure_future(
            asyncio.to_thread(
                self.model.generate,
                tokens,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop,
                emit=emit,
            )
        )
        stopped_at = None
        while True:
            done, _ = await asyncio.wait({generation}, timeout=1.0)
            if done:
                break
            now = time.monotonic()
            if stop.is_set():
                stopped_at = stopped_at or now
                if now - stopped_at > STOP_GRACE_SECONDS:
                    self.on_stuck(f"a generation did not stop within {STOP_GRACE_SECONDS:.0f}s of its cancel")
                    return
            elif now - progress["at"] > self.stall_seconds:
                self.on_stuck(f"a generation produced no token for {self.stall_seconds:.0f}s")
                return
        try:
            record = generation.result()
        except TurnError:
            raise
        except Exception as exc:
            log.exception("the local model failed while generating")
            raise UpstreamFailed(
                f"the local model failed while generating: {exc}", code="generation_failed"
            ) from exc
        self.seconds_per_request = 0.8 * self.seconds_per_request + 0.2 * (time.monotonic() - started)
        finish_reason = "cancelled" if record.cancelled else (record.finish_reason or "length")
        _send(
            writer,
            frame(
                "end",
                finish_reason=finish_reason,
                prompt_tokens=len(record.prompt_tokens),
                completion_tokens=len(record.output_tokens),
            ),
        )


def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    if not writer.is_closing():
        writer.write(data)


def _bounded(value, cap: int) -> int:
    try:
        return max(1, min(int(value), cap))
    except (TypeError, ValueError):
        return cap


def _exit_stuck(reason: str) -> None:
    log.critical("the local model is stuck (%s): exiting so that a fresh model process starts", reason)
    logging.shutdown()
    os._exit(WATCHDOG_EXIT_STATUS)


async def run(path: Path, model, **options) -> None:
    """Serve `model` on the Unix socket at `path` until cancelled (the process is stopped)."""
    if path.exists():
        if listening(path):
            raise SystemExit(f"another model server is already listening on {path}")
        path.unlink()  # left by a model process that died
    server = await ModelServer(model, **options).serve(path)
    log.info("the local model %s is ready on %s", model.name, path)
    try:
        async with server:
            await server.serve_forever()
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def listening(path: Path) -> bool:
    """Whether a model server accepts connections on `path` (a connect on a Unix socket answers at once)."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
