"""Our ASGI application served over real HTTP in a background thread, for clients like the openai SDK."""

import json
import threading
import time

import uvicorn


class LiveASGIServer:
    def __init__(self, app, host: str = "127.0.0.1"):
        config = uvicorn.Config(app, host=host, port=0, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "LiveASGIServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def stream_lines(server: LiveASGIServer, body: dict, path: str = "/v1/chat/completions"):
    """POST a streaming chat request; returns (response headers and status, the non-empty SSE lines)."""
    import httpx2

    with httpx2.stream("POST", f"{server.url}{path}", timeout=30, json={"stream": True, **body}) as response:
        return response, [line for line in response.iter_lines() if line]


def post_chat(server: LiveASGIServer, body, headers=None, path: str = "/v1/chat/completions"):
    """POST a chat request: `body` as JSON, or bytes and strings sent as they are (malformed on purpose)."""
    import httpx2

    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return httpx2.post(
        f"{server.url}{path}",
        content=data,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=30,
    )
