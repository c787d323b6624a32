"""A real local HTTP server that speaks OpenAI's chat-completions protocol: the mock LLM upstream.

Tests (and bench/) point OPENAI_BASE_URL at it and script its behaviour: the tokens to stream, the pace,
a model slow to accept or to answer, usage or none, an HTTP error, an error event mid-stream. It records what it was asked
and how many tokens it managed to send before the client went away.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Script:
    tokens: list[str] = field(default_factory=lambda: ["Hello", " there", "!"])
    model: str = "gpt-4o-mini"
    header_delay: float = 0.0  # silence before the status line: a model slow to accept the request
    first_token_delay: float = 0.0
    token_interval: float = 0.0
    send_usage: bool = True  # honour stream_options.include_usage
    prompt_tokens: int = 42
    status: int = 200  # non-200: answer with an OpenAI error body and this status
    error_after: int | None = None  # send an SSE error event after this many tokens
    finish_reason: str = "stop"
    retry_after: str | None = None
    usage: dict | None = None  # sent as the usage object instead of the computed counts
    ignore_stream: bool = False  # answer a streaming request with one JSON completion, as some servers do
    raw: tuple[str, bytes] | None = None  # (content type, body): answer 200 with exactly this
    # Tool calls to make after the tokens, OpenAI-style: [{"id": "call_1", "name": "list_team",
    # "arguments": "{}"}]; finish_reason becomes "tool_calls". Streamed in two pieces each, as OpenAI does.
    tool_calls: list[dict] = field(default_factory=list)


@dataclass
class Record:
    body: dict
    headers: dict
    peer: tuple = ()  # the client's (host, port): the same port means the same kept-alive connection
    tokens_sent: int = 0
    disconnected: bool = False
    finished: bool = False

    def tool_result(self, call_id: str | None = None) -> str:
        """The text of the tool result this request carries last (or the one answering `call_id`), as
        the tool wrote it: without the quote marks Tron puts around it (agents.prompts.quoted)."""
        results = [m for m in self.body["messages"] if m["role"] == "tool"]
        result = next(m for m in results if m.get("tool_call_id") == call_id) if call_id else results[-1]
        first, _, rest = result["content"].partition("\n")
        assert first.startswith("<<< result of "), result["content"]
        return rest.rsplit("\n>>>", 1)[0]


class FakeUpstream:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.script = Script()
        self.requests: list[Record] = []
        self.replies: list[Script] = []  # queued scripts, used before `script` (queue())
        self._lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # As real servers do: without it, a token written right after the headers waits for the
            # client's delayed ACK (40 ms) on a kept-alive connection.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._json(
                        200, {"object": "list", "data": [{"id": upstream.script.model, "object": "model"}]}
                    )
                else:
                    self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                record = Record(body=body, headers=dict(self.headers), peer=self.client_address)
                with upstream._lock:
                    upstream.requests.append(record)
                script = upstream.next_script()
                time.sleep(script.header_delay)
                if script.status != 200:
                    extra = {"Retry-After": script.retry_after} if script.retry_after else {}
                    self._json(
                        script.status,
                        {
                            "error": {
                                "message": f"scripted failure {script.status}",
                                "type": "server_error",
                                "param": None,
                                "code": None,
                            }
                        },
                        extra,
                    )
                    return
                if script.raw is not None:
                    content_type, data = script.raw
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif body.get("stream") and not script.ignore_stream:
                    self._stream(script, body, record)
                else:
                    self._complete(script, record)

            def _json(self, status, payload, extra_headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (extra_headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _complete(self, script, record):
                time.sleep(script.first_token_delay)
                text = "".join(script.tokens)
                record.tokens_sent = len(script.tokens)
                record.finished = True
                self._json(
                    200,
                    {
                        "id": "chatcmpl-up",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": script.model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {
                                    "role": "assistant",
                                    "content": text or None,
                                    **({"tool_calls": _tool_calls(script)} if script.tool_calls else {}),
                                },
                                "finish_reason": "tool_calls" if script.tool_calls else script.finish_reason,
                            }
                        ],
                        "usage": script.usage
                        or {
                            "prompt_tokens": script.prompt_tokens,
                            "completion_tokens": len(script.tokens),
                            "total_tokens": script.prompt_tokens + len(script.tokens),
                        },
                    },
                )

            def _event(self, payload) -> bool:
                data = payload if isinstance(payload, bytes) else f"data: {json.dumps(payload)}\n\n".encode()
                try:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                    return True
                except (BrokenPipeError, ConnectionResetError):
                    return False

            def _chunk(self, script, delta, finish_reason=None):
                return {
                    "id": "chatcmpl-up",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": script.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                }

            def _stream(self, script, body, record):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                time.sleep(script.first_token_delay)
                if not self._event(self._chunk(script, {"role": "assistant", "content": ""})):
                    record.disconnected = True
                    return
                for index, token in enumerate(script.tokens):
                    if script.error_after is not None and index == script.error_after:
                        self._event(
                            {
                                "error": {
                                    "message": "scripted mid-stream failure",
                                    "type": "server_error",
                                    "param": None,
                                    "code": None,
                                }
                            }
                        )
                        self._end()
                        return
                    if index and script.token_interval:
                        time.sleep(script.token_interval)
                    if not self._event(self._chunk(script, {"content": token})):
                        record.disconnected = True
                        return
                    record.tokens_sent += 1
                for index, call in enumerate(_tool_calls(script)):
                    arguments = call["function"]["arguments"]
                    half = len(arguments) // 2
                    head = {
                        **call,
                        "index": index,
                        "function": {**call["function"], "arguments": arguments[:half]},
                    }
                    self._event(self._chunk(script, {"tool_calls": [head]}))
                    tail = {"index": index, "function": {"arguments": arguments[half:]}}
                    self._event(self._chunk(script, {"tool_calls": [tail]}))
                finish_reason = "tool_calls" if script.tool_calls else script.finish_reason
                self._event(self._chunk(script, {}, finish_reason))
                wants_usage = (body.get("stream_options") or {}).get("include_usage")
                if wants_usage and script.send_usage:
                    usage = script.usage or {
                        "prompt_tokens": script.prompt_tokens,
                        "completion_tokens": len(script.tokens),
                        "total_tokens": script.prompt_tokens + len(script.tokens),
                    }
                    self._event(
                        {
                            "id": "chatcmpl-up",
                            "object": "chat.completion.chunk",
                            "created": int(time.time()),
                            "model": script.model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                self._event(b"data: [DONE]\n\n")
                record.finished = True
                self._end()

            def _end(self):
                try:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "FakeUpstream":
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def reset(self, **script):
        self.script = Script(**script)
        with self._lock:
            self.requests.clear()
            self.replies.clear()

    def queue(self, *scripts: dict) -> None:
        """Answer the next requests with these scripts, one each, in order; then `reset`'s script again."""
        with self._lock:
            self.replies.extend(Script(**script) for script in scripts)

    def next_script(self) -> Script:
        with self._lock:
            return self.replies.pop(0) if self.replies else self.script

    @property
    def last(self) -> Record:
        return self.requests[-1]


def _tool_calls(script: Script) -> list[dict]:
    return [
        {
            "id": call.get("id", f"call_{index}"),
            "type": "function",
            "function": {"name": call["name"], "arguments": call.get("arguments", "{}")},
        }
        for index, call in enumerate(script.tool_calls)
    ]
