"""A small real HTTP server for the life loop's edges: news feeds, the social API and Slack's Web API.

server.route("/rss", Reply(body=rss_bytes, content_type="application/rss+xml"))
server.route("/posts", Reply(status=503), Reply(status=201))  # one reply each, the last repeats
server.requests  # [Request(method, path, headers, body)]
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict = b""
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes = b""

    def json(self):
        return json.loads(self.body)

    def form(self) -> dict:
        """A form-encoded or JSON body as one dict (slack_sdk sends either)."""
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return self.json()
        return {key: values[0] for key, values in parse_qs(self.body.decode()).items()}


@dataclass
class LocalServer:
    routes: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)

    def __post_init__(self):
        server = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._answer(b"")

            def do_POST(self):
                self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _answer(self, body):
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests.append(Request(self.command, path, dict(self.headers), body))
                    replies = server.routes.get(path)
                    reply = (replies.pop(0) if len(replies) > 1 else replies[0]) if replies else Reply(404)
                time.sleep(reply.delay)
                data = json.dumps(reply.body).encode() if isinstance(reply.body, dict) else reply.body
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, path: str, *replies: Reply) -> str:
        with self._lock:
            self.routes[path] = list(replies)
        return self.url + path

    def reset(self):
        with self._lock:
            self.routes.clear()
            self.requests.clear()

    def to(self, path: str) -> list[Request]:
        return [request for request in self.requests if request.path == path]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
