#!/usr/bin/env python3
"""Tron behind Caddy (deploy/Caddyfile): streams per second at saturation with one node and with two, and
the time to first token Caddy itself adds.

    python bench/caddy_streams.py                      # about 2.5 minutes
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tron_bench python bench/caddy_streams.py  # an empty DB

Starts, and cleans up: the fake OpenAI upstream (tests/upstream.py, bench/stream_overhead.py's script: 20
tokens, the first after 50 ms, then one every 20 ms) in a process of its own; a throwaway SQLite database
unless DATABASE_URL names an empty one (`migrate`, `load_team`); two nodes, each one Daphne process as
bench/stream_overhead.py starts it; Debian's caddy running deploy/Caddyfile with this run's ports and its
internal CA (the global options are the only lines added, plus a plain-HTTP site importing the same
proxy), TRON_NODES naming one node or both.

- Saturation: N clients (default 64) each start their next stream when the last ends, for a fixed time,
  through Caddy over HTTP; streams per second counts the streams that ended with [DONE].
- Added TTFT: one stream at a time, straight to a node, through Caddy over HTTP and through Caddy over
  HTTPS with a new TLS connection per stream (what a new client pays), interleaved; p50/p95 each, and
  Caddy's minus direct.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import stream_overhead as so  # noqa: E402 - the upstream, Daphne, the env and the SSE reader


def log(message: str) -> None:
    so.log(message)


class Caddy:
    def __init__(self, tmp: Path, nodes: list[str]):
        self.tmp, self.nodes = tmp, nodes
        self.https_port, self.http_port, self.plain_port = so.free_port(), so.free_port(), so.free_port()
        self.home = tmp / "caddy"
        self.home.mkdir(exist_ok=True)
        options = (
            "\tadmin off\n\tlocal_certs\n\tskip_install_trust\n"
            f"\thttp_port {self.http_port}\n\thttps_port {self.https_port}\n\tstorage file_system {self.home}\n"
        )
        text = (ROOT / "deploy" / "Caddyfile").read_text().replace("\n{\n", "\n{\n" + options, 1)
        text += f"\nhttp://:{self.plain_port} {{\n\tbind 127.0.0.1\n\timport tron_nodes\n}}\n"
        config = self.home / "Caddyfile"
        config.write_text(text)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "XDG_DATA_HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home),
            "TRON_NODES": " ".join(nodes),
            "TRON_BASE_DOMAIN": "localhost",
            "TRON_ASK_PORT": str(so.free_port()),
        }
        self.log_file = open(tmp / "caddy.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["caddy", "run", "--adapter", "caddyfile", "--config", str(config)],
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:  # every node healthy: a stream reaches each (least_conn spreads N>1 over all)
            try:
                with socket.create_connection((so.HOST, self.plain_port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("caddy did not start") from None
                time.sleep(0.1)
        time.sleep(2.5)  # its first active health checks (every 2 s)

    def tls(self) -> ssl.SSLContext:
        deadline = time.monotonic() + 30
        while not (root := self.home / "pki/authorities/local/root.crt").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("caddy made no root certificate")
            time.sleep(0.1)
        return ssl.create_default_context(cafile=str(root))

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log_file.close()


async def stream(port: int, body: bytes, caller: str, tls: ssl.SSLContext | None = None) -> so.Sample:
    """One streamed chat completion on a new connection (TLS when `tls` is given): bench/stream_overhead's
    client, with the TLS handshake counted in the time to first token."""
    t0 = time.perf_counter()
    sample, writer = so.Sample(), None
    try:
        async with asyncio.timeout(so.STREAM_TIMEOUT):
            reader, writer = await asyncio.open_connection(
                so.HOST, port, ssl=tls, server_hostname="localhost" if tls else None
            )
            head = (
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\nX-Request-ID: {caller}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            response_head = await reader.readuntil(b"\r\n\r\n")
            if int(response_head.split(b" ", 2)[1]) != 200:
                sample.error = response_head.split(b"\r\n", 1)[0].decode()
                return sample
            sse = so.SSEReader(t0)
            if b"transfer-encoding: chunked" in response_head.lower():
                while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
                    sse.feed((await reader.readexactly(size + 2))[:-2])
            else:
                while data := await reader.read(65536):
                    sse.feed(data)
            sample.ttft, sample.total = sse.ttft, time.perf_counter() - t0
            sample.error = sse.error or ("" if sse.done else "no [DONE]")
    except TimeoutError:
        sample.error = "timeout"
    except Exception as exc:  # noqa: BLE001 - every failure is a counted error
        sample.error = f"{exc.__class__.__name__}: {exc}"[:100]
    finally:
        if writer is not None:
            writer.close()
    return sample


BODY = b'{"model": "tony", "stream": true, "messages": [{"role": "user", "content": "How is the project going?"}]}'
_callers = iter(range(10**9))


def caller() -> str:
    return f"caddy-bench-{os.getpid()}-{next(_callers)}"


async def saturate(port: int, clients: int, seconds: float) -> dict:
    done, errors, kinds = 0, 0, set()
    end = time.monotonic() + seconds

    async def client():
        nonlocal done, errors
        while time.monotonic() < end:
            sample = await stream(port, BODY, caller())
            if sample.error:
                errors += 1
                kinds.add(sample.error[:60])
            else:
                done += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.monotonic() - started
    return {"streams_per_s": done / elapsed, "streams": done, "errors": errors, "kinds": sorted(kinds)[:3]}


async def ttft(paths: dict, samples: int) -> dict:
    """Time to first token per path, one stream at a time, the paths interleaved."""
    values = {name: [] for name in paths}
    errors = dict.fromkeys(paths, 0)
    for _ in range(samples):
        for name, (port, tls) in paths.items():
            sample = await stream(port, BODY, caller(), tls)
            if sample.error or sample.ttft is None:
                errors[name] += 1
            else:
                values[name].append(sample.ttft * 1000)
    return {
        name: {"p50": so.pct(v, 50), "p95": so.pct(v, 95), "n": len(v), "errors": errors[name]}
        for name, v in values.items()
    }


def main(argv=None) -> int:
    so.reexec_in_venv()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients at saturation (64)")
    parser.add_argument("--seconds", type=float, default=15, help="seconds per saturation run (15)")
    parser.add_argument("--samples", type=int, default=60, help="TTFT samples per path (60)")
    args = parser.parse_args(argv)
    if shutil.which("caddy") is None:
        parser.error("caddy is not installed (apt-get install caddy)")
    sys.dont_write_bytecode = True
    tmp = Path(tempfile.mkdtemp(prefix="tron-caddy-bench-"))
    upstream, nodes, caddy = None, [], None
    load_at_start = os.getloadavg()
    try:
        info = so.machine_info()
        upstream = so.Upstream()
        upstream.script(**so.FAST_SCRIPT)
        env = so.tron_env(tmp, upstream.base_url)
        env.update(TRON_BASE_DOMAIN="localhost", TRON_CALLER_DAILY_SPEND_USD="none")
        if os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        log(f"temp dir {tmp}; migrate + load_team on {env['DATABASE_URL'].split(':', 1)[0]} ...")
        so.manage(env, "migrate", "--noinput", "-v", "0")
        so.manage(env, "load_team")
        for n in range(2):
            node_env = {
                **env,
                "TRON_DATA_DIR": str(tmp / f"node{n}"),
                "PROMETHEUS_MULTIPROC_DIR": str(tmp / f"node{n}/metrics"),
            }
            Path(node_env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True)
            nodes.append(so.Daphne(node_env, tmp / f"node{n}.log", processes=1))
        for node in nodes:
            node.wait_healthy()
        addresses = [f"{so.HOST}:{node.port}" for node in nodes]
        results = {}
        for count in (1, 2):
            caddy = Caddy(tmp, addresses[:count])
            log(f"{count} node(s): warm-up, then {args.clients} clients for {args.seconds:.0f} s ...")
            asyncio.run(saturate(caddy.plain_port, 20, 3))
            results[count] = asyncio.run(saturate(caddy.plain_port, args.clients, args.seconds))
            log(f"  {results[count]['streams_per_s']:.1f} streams/s, {results[count]['errors']} errors")
            if count == 1:
                log(f"TTFT, one stream at a time, {args.samples} per path ...")
                tls = caddy.tls()
                paths = {
                    "direct": (nodes[0].port, None),
                    "caddy_http": (caddy.plain_port, None),
                    "caddy_https": (caddy.https_port, tls),
                }
                asyncio.run(ttft(paths, 10))  # warm-up (the first TLS handshake issues the certificate)
                latency = asyncio.run(ttft(paths, args.samples))
            caddy.stop()
            caddy = None
        load_at_end = os.getloadavg()
        print(
            f"Machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}, Linux {info['kernel']}; "
            f"{info['date']}; commit {info['commit']}; caddy {subprocess.run(['caddy', 'version'], capture_output=True, text=True).stdout.split()[0]}; "
            f"load average (1/5/15 min) at start {load_at_start[0]:.2f}/{load_at_start[1]:.2f}/{load_at_start[2]:.2f}, "
            f"at end {load_at_end[0]:.2f}/{load_at_end[1]:.2f}/{load_at_end[2]:.2f}; database "
            f"{env['DATABASE_URL'].split(':', 1)[0]}; each node one Daphne process."
        )
        print()
        print("| nodes behind Caddy | clients | streams/s | streams | errors |\n|---|---|---|---|---|")
        for count, r in results.items():
            print(
                f"| {count} | {args.clients} | {r['streams_per_s']:.1f} | {r['streams']} | {r['errors']} {', '.join(r['kinds'])} |"
            )
        print()
        print(
            "| path | samples | TTFT p50 ms | TTFT p95 ms | added p50 | added p95 | errors |\n|---|---|---|---|---|---|---|"
        )
        direct = latency["direct"]
        for name, r in latency.items():
            print(
                f"| {name} | {r['n']} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p50'] - direct['p50']:+.1f} "
                f"| {r['p95'] - direct['p95']:+.1f} | {r['errors']} |"
            )
        return 0
    finally:
        if caddy:
            caddy.stop()
        for node in nodes:
            node.stop()
        if upstream:
            upstream.stop()
        if os.environ.get("BENCH_KEEP_TMP"):
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
