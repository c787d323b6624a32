"""The embedded model as `make run` serves it: its process's start-up, time to first token, tokens per
second with 1 and 4 concurrent requests, and its memory.

    make bench-model                                       # = .venv/bin/python bench/local_model.py
    .venv/bin/python bench/local_model.py --rounds 10 --threads 2

Starts `manage.py serve_model` on a socket in a temp dir (the packaged SmolLM2-135M-Instruct unless
TRON_LOCAL_MODEL_PATH is set) and talks to it through the provider the web processes use
(agents/llm/local.py). Each request is the compact persona prompt and one short question, at
temperature 0, up to 64 tokens. With 4 at once they queue: a request's time to first token includes
its wait, which is what a caller hears.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

QUESTIONS = [
    "What is the capital of France?",
    "Hi Tony, how are you?",
    "Should we use Postgres or MongoDB?",
    "What should we build next?",
]


def _start_model_process(path: Path, threads: int) -> tuple[subprocess.Popen, float]:
    from agents.llm.model_server import listening

    env = {**os.environ, "TRON_LOCAL_MODEL_SOCKET": str(path), "TRON_LOCAL_MAX_TOKENS": "64"}
    if threads:
        env["TRON_LOCAL_MODEL_THREADS"] = str(threads)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve_model"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    while not listening(path):
        if process.poll() is not None:
            raise SystemExit("the model process exited")
        time.sleep(0.01)
    return process, time.monotonic() - started


def _memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


async def _one(question: str) -> dict:
    from agents.llm.base import LLMRequest
    from agents.llm.local import LocalProvider
    from agents.models import Persona
    from agents.prompts import compact_persona_prompt

    persona = Persona(name="Tony", role="CTO", tone="Technical and pragmatic, with dry humor")
    persona.focus_areas = ["engineering", "technology", "architecture", "ai", "infrastructure"]
    messages = [
        {"role": "system", "content": compact_persona_prompt(persona)},
        {"role": "user", "content": question},
    ]
    request = LLMRequest(messages=messages, model="local", temperature=0.0, max_tokens=64)
    started = time.monotonic()
    first = usage = None
    async for delta in LocalProvider().stream(request):
        if delta.text and first is None:
            first = time.monotonic()
        if delta.usage:
            usage = delta.usage
    ended = time.monotonic()
    return {
        "ttft": first - started,
        "tokens": usage.output_tokens,
        "tokens_per_second": (usage.output_tokens - 1) / (ended - first) if usage.output_tokens > 1 else 0.0,
        "seconds": ended - started,
    }


async def _level(concurrency: int, rounds: int) -> dict:
    results, wall, tokens = [], 0.0, 0
    for round_ in range(rounds):
        questions = [QUESTIONS[(round_ + i) % len(QUESTIONS)] for i in range(concurrency)]
        started = time.monotonic()
        batch = await asyncio.gather(*(_one(q) for q in questions))
        wall += time.monotonic() - started
        tokens += sum(r["tokens"] for r in batch)
        results += batch
    ttfts = sorted(r["ttft"] * 1000 for r in results)
    return {
        "ttft_p50": statistics.median(ttfts),
        "ttft_max": ttfts[-1],
        "per_request_tps": statistics.median(r["tokens_per_second"] for r in results),
        "aggregate_tps": tokens / wall,
        "requests": len(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument(
        "--threads", type=int, default=0, help="TRON_LOCAL_MODEL_THREADS (default: its default)"
    )
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    tmp = Path(tempfile.mkdtemp(prefix="tron-bench-model-"))
    os.environ.update(DJANGO_SETTINGS_MODULE="tron_site.settings", TRON_DATA_DIR=str(tmp))
    os.environ["TRON_LOCAL_MODEL_SOCKET"] = str(tmp / "model.sock")
    import django

    django.setup()
    from django.conf import settings

    threads = args.threads or settings.TRON_LOCAL_MODEL_THREADS
    process, ready = _start_model_process(tmp / "model.sock", args.threads)
    try:
        idle = _memory_kib(process.pid)
        asyncio.run(_one(QUESTIONS[0]))  # warm-up: the first request pays for page faults
        print(
            f"model process ready in {ready:.2f} s (Django start-up and model load); {threads} llama.cpp thread(s)"
        )
        print(f"memory idle: RSS {idle['VmRSS'] / 1024:.0f} MiB")
        print("concurrent | requests | TTFT p50 / max (ms) | tokens/s per request | tokens/s overall")
        for concurrency in (1, 4):
            r = asyncio.run(_level(concurrency, args.rounds))
            print(
                f"{concurrency:>10} | {r['requests']:>8} | {r['ttft_p50']:>7.0f} / {r['ttft_max']:<7.0f}"
                f" | {r['per_request_tps']:>20.0f} | {r['aggregate_tps']:>16.0f}"
            )
        memory = _memory_kib(process.pid)
        print(f"memory after: RSS {memory['VmRSS'] / 1024:.0f} MiB, peak {memory['VmHWM'] / 1024:.0f} MiB")
    finally:
        process.terminate()
        process.wait(timeout=15)


if __name__ == "__main__":
    main()
