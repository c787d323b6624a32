#!/usr/bin/env python3
"""What Tron's ElevenLabs WebSocket adds: the time from a `user_message` to the first
`agent_chat_response_part` delta, over calling the upstream directly.

    python bench/ws_overhead.py                    # levels 1 and 20, about a minute
    python bench/ws_overhead.py --levels 1 --samples 20   # a quick look

The same harness as bench/stream_overhead.py (whose pieces it uses): the fake upstream in a process of
its own (20 tokens, the first after 50 ms, then one every 20 ms), a throwaway SQLite database, and Daphne
as `make run` starts it. The client speaks WebSocket on raw asyncio sockets (no library in the
measurement). At level N, N conversations run at once, each sending its next `user_message` when the
last answer (`agent_response`) is in, and starting again on a new socket every `--turns` turns, as calls
do; the time runs from just before the frame is written to the first delta. The baseline is N clients
streaming directly from the upstream at once, each stream timed from just before its `connect()` (a
loopback connect, ~0.1 ms, which the WebSocket's open connection does not pay: "added" is, if anything,
understated by that). "Added" is Tron's percentile minus the direct one. Target: p50 ≤ 5 ms at 20.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stream_overhead import (  # noqa: E402
    FAST_SCRIPT,
    HOST,
    Daphne,
    Targets,
    Upstream,
    log,
    manage,
    pct,
    reexec_in_venv,
    tron_env,
)

TARGET_LEVEL = 20
TARGET_ADDED_P50_MS = 5.0
TURN_TIMEOUT = 30.0


class WebSocket:
    """The client side of RFC 6455 for text frames, on an asyncio stream."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, path: str) -> WebSocket:
        reader, writer = await asyncio.open_connection(HOST, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: convai\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"handshake refused: {head.splitlines()[0]!r}")
        return cls(reader, writer)

    def send(self, message: dict, opcode: int = 0x1) -> None:
        payload = json.dumps(message).encode() if opcode == 0x1 else message
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    async def receive(self) -> dict:
        """The next text message (the server's WebSocket pings are answered on the way)."""
        while True:
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(size)
            opcode = first & 0x0F
            if opcode == 0x1:
                return json.loads(payload)
            if opcode == 0x9:
                self.send(payload, opcode=0xA)
            elif opcode == 0x8:
                raise ConnectionError("the server closed the socket")

    async def close(self) -> None:
        self.send(struct.pack("!H", 1000), opcode=0x8)
        self.writer.close()


async def conversation(port: int, turns: int, samples: list[float], errors: list[str]) -> None:
    ws = await WebSocket.connect(port, "/v1/convai/conversation?agent_id=tony")
    try:
        ws.send({"type": "conversation_initiation_client_data"})
        if (await ws.receive())["type"] != "conversation_initiation_metadata":
            raise RuntimeError("no conversation_initiation_metadata")
        for _ in range(turns):
            async with asyncio.timeout(TURN_TIMEOUT):
                started = time.perf_counter()
                ws.send({"type": "user_message", "text": "Hello! How is the project going this week?"})
                first = None
                while True:
                    message = await ws.receive()
                    kind = message["type"]
                    if kind == "agent_chat_response_part" and first is None:
                        if message["text_response_part"]["type"] == "delta":
                            first = time.perf_counter() - started
                    elif kind == "agent_response":
                        break
                    elif kind == "error":
                        raise RuntimeError(message["error_event"]["message"][:80])
            if first is None:
                errors.append("no delta")
            else:
                samples.append(first)
    except Exception as exc:  # noqa: BLE001 - every failure is a counted error
        errors.append(f"{exc.__class__.__name__}: {exc}"[:100])
    finally:
        await ws.close()


async def tron_level(port: int, level: int, samples: int, turns: int) -> tuple[list[float], list[str]]:
    times: list[float] = []
    errors: list[str] = []

    async def client():
        while len(times) + len(errors) < samples:
            await conversation(port, turns, times, errors)

    await asyncio.gather(*(client() for _ in range(level)))
    return times, errors


async def direct_level(targets: Targets, level: int, samples: int) -> tuple[list[float], list[str]]:
    times: list[float] = []
    errors: list[str] = []

    async def client():
        while len(times) + len(errors) < samples:
            sample = await targets.direct()
            (errors.append(sample.error) if sample.error else times.append(sample.ttft))

    await asyncio.gather(*(client() for _ in range(level)))
    return times, errors


def row(name: str, values: list[float]) -> str:
    return (
        f"{name}: "
        + " / ".join(f"{pct(values, p) * 1000:.1f}" for p in (50, 95, 99))
        + " ms (p50 / p95 / p99)"
    )


async def measure(args, port: int, targets: Targets) -> list[dict]:
    await tron_level(port, 2, 10, 5)  # warm up: imports, connections, the persona cache
    await direct_level(targets, 2, 10)
    results = []
    for level in args.levels:
        log(f"level {level}: {args.samples} turns each side ...")
        tron, tron_errors = await tron_level(port, level, args.samples, args.turns)
        direct, direct_errors = await direct_level(targets, level, args.samples)
        added = {p: (pct(tron, p) - pct(direct, p)) * 1000 for p in (50, 95, 99)}
        results.append(
            {
                "level": level,
                "tron": tron,
                "direct": direct,
                "added": added,
                "errors": tron_errors + direct_errors,
            }
        )
        print(f"\n{level} conversation(s), {len(tron)} turns:")
        print("  " + row("Tron, user_message to first delta", tron))
        print("  " + row("direct, connect to first token", direct))
        print(
            f"  added: {added[50]:.1f} / {added[95]:.1f} / {added[99]:.1f} ms; errors: {len(tron_errors + direct_errors)}"
            + (f" ({sorted(set(tron_errors + direct_errors))[:3]})" if tron_errors or direct_errors else "")
        )
    return results


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,20", help="concurrent conversations, comma-separated")
    parser.add_argument("--samples", type=int, default=400, help="turns per level and side")
    parser.add_argument("--turns", type=int, default=10, help="turns per conversation before a new socket")
    parser.add_argument("--web-processes", type=int, default=min(os.cpu_count() or 1, 8))
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args(argv)
    args.levels = [int(n) for n in args.levels.split(",") if n.strip()]
    if not args.levels or any(not 1 <= n <= 200 for n in args.levels) or not 1 <= args.samples <= 5000:
        parser.error("levels 1-200, samples 1-5000")
    return args


def main(argv=None) -> int:
    reexec_in_venv()
    args = parse_args(argv)
    sys.dont_write_bytecode = True
    signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(KeyboardInterrupt))
    tmp = Path(tempfile.mkdtemp(prefix="tron-bench-ws-"))
    upstream = daphne = None
    try:
        upstream = Upstream()
        upstream.script(**FAST_SCRIPT)
        env = tron_env(tmp, upstream.base_url)
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "load_team")
        daphne = Daphne(env, tmp / "daphne.log", processes=args.web_processes)
        daphne.wait_healthy()
        log(f"Daphne pids {daphne.pids} on {HOST}:{daphne.port}, upstream {upstream.base_url}")
        results = asyncio.run(measure(args, daphne.port, Targets(daphne.port, upstream.port)))
        at_target = next((r for r in results if r["level"] == TARGET_LEVEL), None)
        if at_target is not None:
            met = at_target["added"][50] <= TARGET_ADDED_P50_MS
            print(
                f"\nTarget: added p50 ≤ {TARGET_ADDED_P50_MS} ms at {TARGET_LEVEL}: "
                f"{at_target['added'][50]:.1f} ms, {'met' if met else 'NOT met'}"
            )
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    [
                        {
                            "level": r["level"],
                            "added_ms": r["added"],
                            "errors": len(r["errors"]),
                            "turns": len(r["tron"]),
                        }
                        for r in results
                    ],
                    indent=2,
                )
                + "\n"
            )
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if daphne is not None:
            daphne.stop()
        if upstream is not None:
            upstream.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
