"""The production topology, as deploy/ runs it: Debian's Caddy with deploy/Caddyfile (on-demand TLS from
its internal CA, asking the nodes) in front of two nodes, each a web service and a worker service
(`python -m tron_site.serve --role web|worker`) on one PostgreSQL and one Redis, after `manage.py
release`. All traffic goes through Caddy: SSE chat streams (the openai SDK), the ElevenLabs socket and
signed Slack events. One node is killed, its whole process group at once, in the middle of the load.

What must hold: Slack messages are answered once each, retries and all, by whichever node's worker; a
life-loop slot that three tasks race for runs once; after Caddy has marked the dead node down, no new
request fails; the dead node's turn in flight ends failed once its lease lapses; and every caller's
transcript holds each of their words once, with one answer for each request that was answered.
"""

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import openai
import pytest
from django.db import connection
from django_q.models import Schedule, Task

from agents.models import Message, Turn
from lifeloop.models import ActivityRun
from tests import daphne
from tests.integrations.slack.conftest import envelope, mention, signed_headers
from tests.net import free_port, redis_is_up
from tests.slack_api import FakeSlack

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/12"  # a database of its own: the queue starts empty
CHAT_KEY = "topology-chat-key"
SLACK_SECRET = "topology-signing-secret"
LEASE = 3
HEALTH_INTERVAL = "300ms"
# Each answer streams 10 tokens over ~0.5 s, so turns are in flight on both nodes when one dies.
SHORT = {"tokens": [f"w{n} " for n in range(10)], "token_interval": 0.05}
LONG = {"tokens": [f"long{n} " for n in range(200)], "token_interval": 0.05}


def wait_for(what: str, check, seconds: float = 60, every: float = 0.1):
    """Poll `check` until it returns something true; a bound on waiting, not a latency check."""
    deadline = time.monotonic() + seconds
    while True:
        if value := check():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class Node:
    """One machine: the web service and the worker service, in one process group (a machine that dies
    takes both)."""

    def __init__(self, name: str, env: dict, logs: Path):
        self.name, self.port = name, free_port()
        data = logs / name
        self.env = {
            **env,
            "TRON_HOST": "127.0.0.1",
            "TRON_PORT": str(self.port),
            "TRON_DATA_DIR": str(data),
            "PROMETHEUS_MULTIPROC_DIR": str(data / "metrics"),
        }
        self.log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.web = self.worker = None

    def collectstatic(self) -> subprocess.Popen:
        """The web unit's ExecStartPre."""
        command = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"]
        return subprocess.Popen(command, cwd=ROOT, env=self.env)

    def start(self):
        serve = [sys.executable, "-m", "tron_site.serve", "--role"]
        common = {"cwd": ROOT, "env": self.env, "stdout": self.log, "stderr": subprocess.STDOUT}
        self.web = subprocess.Popen([*serve, "web"], process_group=0, **common)
        self.worker = subprocess.Popen([*serve, "worker"], process_group=self.web.pid, **common)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            answer = httpx2.get(
                f"http://{self.address}/health/ready", headers={"Host": "localhost"}, timeout=2
            )
        except httpx2.TransportError:
            return False
        return answer.status_code == 200

    def kill(self):
        os.killpg(self.web.pid, signal.SIGKILL)
        for process in (self.web, self.worker):
            process.wait(10)

    def stop(self):
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.web.pid, sig)
            except ProcessLookupError:
                break
            try:
                for process in (self.web, self.worker):
                    process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.log.close()


class Caddy:
    """Debian's caddy running deploy/Caddyfile, with the test's ports and its internal CA in place of
    Let's Encrypt (the global options are the only lines added)."""

    def __init__(self, nodes: list[Node], tmp: Path):
        self.port, self.http_port, self.ask_port = free_port(), free_port(), free_port()
        self.home = tmp / "caddy"
        self.home.mkdir()
        test_options = (
            "\tadmin off\n\tlocal_certs\n\tskip_install_trust\n"
            f"\thttp_port {self.http_port}\n\thttps_port {self.port}\n"
            f"\tstorage file_system {self.home}\n\tlog {{\n\t\tlevel INFO\n\t}}\n"
        )
        caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
        assert "\n{\n" in caddyfile, "deploy/Caddyfile starts with its global options block"
        config = self.home / "Caddyfile"
        config.write_text(caddyfile.replace("\n{\n", "\n{\n" + test_options, 1))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "XDG_DATA_HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home),
            "TRON_NODES": " ".join(node.address for node in nodes),
            "TRON_BASE_DOMAIN": "localhost",
            "TRON_HEALTH_INTERVAL": HEALTH_INTERVAL,
            "TRON_ASK_PORT": str(self.ask_port),
        }
        self.log_path = tmp / "caddy.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["caddy", "run", "--adapter", "caddyfile", "--config", str(config)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"https://localhost:{self.port}"

    def tls(self) -> ssl.SSLContext:
        """Trust Caddy's internal CA only: the certificate must have been issued (after Tron said yes)."""
        root = wait_for(
            "Caddy's root certificate", lambda: next(self.home.glob("pki/authorities/local/root.crt"), None)
        )
        return ssl.create_default_context(cafile=str(root))

    def health_failures(self, address: str) -> int:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return sum(1 for line in lines if "health_checker.active" in line and f'"host":"{address}"' in line)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Topology:
    """The services of the test's deployment, started in the order a release runs them; stopped at the end."""

    def __init__(self, tmp: Path, upstream):
        self.tmp, self.upstream = tmp, upstream
        self.slack = FakeSlack().start()
        self.slack.add_user("U0ADA0001", "Ada Lovelace")
        self.nodes, self.caddy = [], None
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("DJANGO_", "TRON_", "OPENAI_", "SLACK_"))
            },
            "DATABASE_URL": daphne.database_url(),
            "REDIS_URL": REDIS_URL,
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "topology-" + "k7Q2x" * 12,
            "DJANGO_ALLOWED_HOSTS": "localhost,.localhost",
            "TRON_BEHIND_HTTPS_PROXY": "true",
            "TRON_BASE_DOMAIN": "localhost",
            "TRON_API_TOKEN": "topology-api-token",
            "TRON_CHAT_API_KEY": CHAT_KEY,
            "VAPI_SECRET": "topology-vapi-secret",
            "TRON_LLM": "openai",
            "OPENAI_BASE_URL": upstream.base_url,
            "OPENAI_API_KEY": "sk-test",
            "TRON_LLM_MAX_RETRIES": "0",
            "TRON_TURN_LEASE_SECONDS": str(LEASE),
            "TRON_CACHE_SECONDS": "0",
            "TRON_CALLER_REQUESTS_PER_MINUTE": "0",
            "TRON_CALLER_DAILY_SPEND_USD": "none",
            "TRON_WEB_PROCESSES": "1",
            "TRON_WORKERS": "1",
            "SLACK_SIGNING_SECRET": SLACK_SECRET,
            "SLACK_BOT_TOKEN": "xoxb-topology",
            "SLACK_API_URL": self.slack.url,
        }

    def release_and_start(self):
        """The release step (deploy/systemd/tron-release.service: deployment checks, migrations, the team,
        the schedules) on one machine while the nodes collect their static files, then the nodes."""
        self.nodes = [Node(name, self.env, self.tmp) for name in ("node-a", "node-b")]
        collecting = [node.collectstatic() for node in self.nodes]
        release = [sys.executable, "manage.py", "release", "-v", "0"]
        subprocess.run(release, cwd=ROOT, env=self.env, check=True, timeout=300)
        assert all(process.wait(120) == 0 for process in collecting)
        for node in self.nodes:
            node.start()
        self.caddy = Caddy(self.nodes, self.tmp)
        for node in self.nodes:
            wait_for(f"{node.name} to be ready", node.ready)
        return self.caddy, self.nodes

    def manage_shell(self, code: str) -> subprocess.Popen:
        """Python run on a node's machine (`manage.py shell -c`), with its settings: its broker is Redis."""
        return subprocess.Popen([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=self.env)

    def stop(self):
        if self.caddy:
            self.caddy.stop()
        for node in self.nodes:
            if node.web:
                node.stop()
        self.slack.stop()
        logs = [self.tmp / f"{node.name}.log" for node in self.nodes] + [self.tmp / "caddy.log"]
        for path in logs:  # shown when the test fails: what went wrong where
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            lines = [line for line in lines if "/health/ready" not in line and '"level":"info"' not in line]
            print(f"--- {path.name}, last lines ---", *lines[-25:], sep="\n")


@pytest.fixture
def topology(tmp_path, upstream, transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("the topology runs on PostgreSQL (CI's second pass: DATABASE_URL=postgres://…)")
    if shutil.which("caddy") is None:
        pytest.skip("Debian's caddy is not installed (apt-get install caddy; .ci/run installs it)")
    if not redis_is_up():
        pytest.skip("no Redis on 127.0.0.1:6379 (.ci/run starts one)")
    import redis

    queue = redis.Redis.from_url(REDIS_URL)
    queue.flushdb()
    upstream.reset(**SHORT)
    topology = Topology(tmp_path, upstream)
    try:
        yield topology
    finally:
        topology.stop()
        queue.flushdb()


class Caller:
    """One SDK caller streaming its turns through Caddy, one after the other; records what it said, when
    each request started, and the answer (None when the request failed)."""

    def __init__(self, name: str, client: openai.OpenAI):
        self.name, self.client = name, client
        self.results: list[tuple[str, float, str | None]] = []
        self.errors: list[str] = []

    def say(self, words: str, on_words=None) -> str | None:
        started, answer = time.monotonic(), None
        try:
            stream = self.client.chat.completions.create(
                model="tony",
                stream=True,
                messages=[{"role": "user", "content": words}],
                extra_headers={"X-Request-ID": self.name},
            )
            parts, finished = [], False
            for chunk in stream:
                if chunk.choices:
                    parts.append(chunk.choices[0].delta.content or "")
                    finished = finished or chunk.choices[0].finish_reason == "stop"
                    if on_words and len(parts) == 4:
                        on_words()
            answer = "".join(parts) if finished else None
        except (openai.APIError, httpx2.HTTPError) as exc:
            self.errors.append(f"{words}: {exc!r}")
        self.results.append((words, started, answer))
        return answer


def audit(caller: Caller, marked_down_at: float):
    """Every request the caller made: answered ones once each in the transcript with their answer, failed
    ones at most once and never answered there, and none that started after Caddy marked node A down failed."""
    late_failures = [
        w for w, started, answer in caller.results if answer is None and started > marked_down_at
    ]
    assert late_failures == [], caller.name
    turns = Turn.objects.filter(caller_id=f"req-{caller.name}")
    assert not turns.exclude(state__in=[Turn.State.ANSWERED, Turn.State.FAILED]).exists(), caller.name
    said = list(
        Message.objects.filter(turn__in=turns, role="user").order_by("id").values_list("content", flat=True)
    )
    sent = [words for words, _, _ in caller.results]
    assert len(said) == len(set(said)) == turns.count(), caller.name  # nothing doubled, one turn each
    assert said == [words for words in sent if words in said], caller.name  # in the order sent
    for words, _, answer in caller.results:
        turn = turns.filter(messages__role="user", messages__content=words).first()
        if answer is None:  # it failed; if a node got it, its turn failed too (lost with node A)
            assert turn is None or turn.state == Turn.State.FAILED, (caller.name, words)
            continue
        assert turn is not None and turn.state == Turn.State.ANSWERED, (caller.name, words)  # none lost
        assert list(turn.messages.filter(role="assistant").values_list("content", flat=True)) == [answer]


def test_two_nodes_behind_caddy_lose_one_and_keep_every_turn(topology):
    upstream, slack = topology.upstream, topology.slack
    caddy, (node_a, node_b) = topology.release_and_start()
    # Tony's journal slot, handed to the workers three times (as the schedule's run and two redeliveries
    # of it would be): both nodes' workers take them from Redis; the slot must run once.
    slot = Schedule.objects.get(name="life: Tony journal")
    enqueue = (
        f"from django_q.tasks import async_task\nfor _ in range(3): async_task({slot.func!r}, {slot.args})"
    )
    enqueuing = topology.manage_shell(enqueue)
    tls = caddy.tls()
    http = httpx2.Client(verify=tls, timeout=60)
    sdk = openai.OpenAI(base_url=f"{caddy.url}/v1", api_key=CHAT_KEY, max_retries=0, http_client=http)
    wait_for("Caddy to serve", lambda: http.get(f"{caddy.url}/health/ready").status_code == 200)
    # The certificate question is Caddy's own, asked on loopback: from outside it tells nobody which
    # names Tron serves (asked directly, a node says yes to this one).
    assert http.get(f"{caddy.url}/internal/caddy-ask", params={"domain": "localhost"}).status_code == 404

    # -- Slack, both nodes up: four messages, each delivered twice (Slack's retry), answered once each.
    texts = [f"Slack question {n}?" for n in range(4)]
    for text in texts:
        body = json.dumps(envelope(mention(text))).encode()
        for retry in (None, "1"):
            headers = {"Content-Type": "application/json", **signed_headers(body, SLACK_SECRET)}
            if retry:
                headers |= {"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"}
            assert http.post(f"{caddy.url}/slack/events", content=body, headers=headers).status_code == 200
    wait_for("the Slack answers", lambda: len(slack.posts()) >= len(texts), seconds=30)

    # -- The life loop, both nodes up.
    assert enqueuing.wait(60) == 0
    journal_tasks = Task.objects.filter(func=slot.func)
    wait_for("the three journal tasks", lambda: journal_tasks.count() >= 3, seconds=60, every=0.2)

    # -- Two long streams, one on each node (least_conn), then six callers' load, then node A dies.
    victims = [Caller(f"victim-{n}", sdk) for n in range(2)]
    upstream.queue(LONG, LONG)
    streaming = threading.Barrier(3)
    victim_threads = []
    for victim in victims:
        words, kwargs = f"{victim.name}: tell me a long story", {"on_words": lambda: streaming.wait(30)}
        victim_threads.append(threading.Thread(target=victim.say, args=(words,), kwargs=kwargs, daemon=True))
        victim_threads[-1].start()
        time.sleep(0.3)  # the second arrives while the first is open: least_conn sends it to the other node
    streaming.wait(30)
    callers = [Caller(f"caller-{n}", sdk) for n in range(6)]
    load_threads = [
        threading.Thread(target=lambda c=c: [c.say(f"{c.name} turn {t}") for t in range(5)], daemon=True)
        for c in callers
    ]
    for thread in load_threads:
        thread.start()
    time.sleep(1.0)
    failures_before = caddy.health_failures(node_a.address)
    node_a.kill()
    # Both of the Caddyfile's proxies (the site's, and the certificate question's) have marked it down.
    wait_for(
        "Caddy to mark node A down", lambda: caddy.health_failures(node_a.address) >= failures_before + 2, 10
    )
    marked_down_at = time.monotonic()

    # -- The ElevenLabs socket, through Caddy, after the kill.
    import websocket

    ws_url = caddy.url.replace("https", "wss") + f"/v1/convai/conversation?agent_id=maya&token={CHAT_KEY}"
    sock = websocket.create_connection(ws_url, timeout=30, sslopt={"context": tls})
    sock.send(json.dumps({"type": "conversation_initiation_client_data", "user_id": "eleven"}))
    assert json.loads(sock.recv())["type"] == "conversation_initiation_metadata"
    spoken = []
    for n in range(2):
        sock.send(json.dumps({"type": "user_message", "text": f"eleven turn {n}"}))
        while (frame := json.loads(sock.recv()))["type"] != "agent_response":
            assert frame["type"] != "error", frame
        spoken.append(frame["agent_response_event"]["agent_response"])
    sock.close()
    assert spoken == ["".join(SHORT["tokens"])] * 2

    for thread in load_threads + victim_threads:
        thread.join(90)
    # The victims speak again: the one whose turn died with node A waits out its lease, then is answered.
    for victim in victims:
        assert victim.say(f"{victim.name}: are you there?") == "".join(SHORT["tokens"]), victim.errors

    # -- Exactly one victim's stream died with node A, and its turn ended failed, as lost.
    broken = [victim for victim in victims if victim.results[0][2] is None]
    assert len(broken) == 1
    lost = Turn.objects.get(caller_id=f"req-{broken[0].name}", messages__content__endswith="a long story")
    assert lost.state == Turn.State.FAILED and lost.error.startswith("Lost mid-turn")

    # -- No turn lost or doubled; nothing failed once Caddy knew.
    for caller in callers + victims:
        audit(caller, marked_down_at)
    assert Turn.objects.filter(caller_id="elevenlabs-user-eleven", state=Turn.State.ANSWERED).count() == 2

    # -- Slack: one reply per message, though each came twice and two workers were taking tasks.
    replies = slack.posts()
    assert len(replies) == len(texts) == len({reply["thread_ts"] for reply in replies})

    # -- The life loop: three tasks ran for the slot, one run was recorded.
    runs = ActivityRun.objects.filter(persona__name="Tony", activity="journal")
    assert runs.count() == 1 and runs.get().status == ActivityRun.Status.COMPLETED
    results = list(journal_tasks.values_list("result", flat=True))
    assert sum("ran already" in (result or "") for result in results) == 2, results
