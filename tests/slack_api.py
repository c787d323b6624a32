"""A real local HTTP server that stands in for Slack's Web API (https://slack.com/api/<method>).

slack_sdk's WebClient is pointed at it (SLACK_API_URL). It records every call (method, its arguments
from a JSON or form body or the query string, the token), answers `chat.postMessage`, `users.info` and
`auth.test` as Slack does, and can be scripted to fail: a rate limit with `Retry-After`, an error such
as `not_in_channel`, a server error.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

BOT_USER_ID = "UBOT0001"
BOT_ID = "BBOT0001"


@dataclass
class Call:
    method: str
    args: dict
    token: str
    at: float = field(default_factory=time.monotonic)


@dataclass
class Reply:
    status: int = 200
    body: dict = field(default_factory=lambda: {"ok": True})
    headers: dict = field(default_factory=dict)


class FakeSlack:
    def __init__(self, host: str = "127.0.0.1"):
        self.calls: list[Call] = []
        self.users: dict[str, dict] = {}
        self._scripted: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self._ts = 0
        slack = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._handle(b"")

            def do_POST(self):
                self._handle(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _handle(self, raw: bytes):
                url = urlsplit(self.path)
                method = url.path.rsplit("/", 1)[-1]
                args = dict(parse_qsl(url.query))
                if raw:
                    if self.headers.get("Content-Type", "").startswith("application/json"):
                        args.update(json.loads(raw))
                    else:
                        args.update(parse_qsl(raw.decode()))
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                reply = slack._reply(Call(method, args, token))
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "FakeSlack":
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/api/"

    def reset(self):
        with self._lock:
            self.calls.clear()
            self.users.clear()
            self._scripted.clear()

    def script(self, method: str, *replies: Reply):
        """The next calls of `method` get these replies, in order; then the usual answers again."""
        with self._lock:
            self._scripted.setdefault(method, []).extend(replies)

    def posts(self) -> list[dict]:
        """The arguments of every chat.postMessage that Slack accepted, in order."""
        with self._lock:
            calls = list(self.calls)
        return [call.args for call in calls if call.method == "chat.postMessage" and call.args.get("_ok")]

    def attempts(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def _reply(self, call: Call) -> Reply:
        with self._lock:
            scripted = self._scripted.get(call.method)
            reply = scripted.pop(0) if scripted else None
            if reply is None:
                reply = self._usual(call)
            call.args["_ok"] = reply.status == 200 and reply.body.get("ok") is True
            self.calls.append(call)
        return reply

    def _usual(self, call: Call) -> Reply:
        if call.method == "chat.postMessage":
            self._ts += 1
            ts = f"1800000000.{self._ts:06d}"
            return Reply(body={"ok": True, "channel": call.args.get("channel"), "ts": ts})
        if call.method == "users.info":
            user = self.users.get(call.args.get("user", ""))
            if user is None:
                return Reply(body={"ok": False, "error": "user_not_found"})
            return Reply(body={"ok": True, "user": user})
        if call.method == "auth.test":
            return Reply(body={"ok": True, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "team_id": "T0001"})
        return Reply(body={"ok": False, "error": "unknown_method"})

    def add_user(self, user_id: str, real_name: str, display_name: str = ""):
        """A user users.info can read."""
        handle = real_name.split()[0].lower()
        with self._lock:
            self.users[user_id] = {
                "id": user_id,
                "name": handle,
                "real_name": real_name,
                "profile": {"display_name": display_name, "real_name": real_name},
            }
