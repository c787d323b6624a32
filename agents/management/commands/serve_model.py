"""Run the local model's process: load the GGUF once and serve it on TRON_LOCAL_MODEL_SOCKET.

`make run` starts it (tron_site/serve.py) when the local provider is in use, and restarts it when it
dies. Web and worker processes reach it through agents/llm/local.py. See agents/llm/model_server.py.
"""

import asyncio
import contextlib
import signal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from agents import metrics
from agents.errors import TurnError
from agents.llm import model_server


class Command(BaseCommand):
    help = "Serve the embedded model to the web and worker processes over a Unix socket."

    def add_arguments(self, parser):
        parser.add_argument("--socket", default=None, help="socket path (default: TRON_LOCAL_MODEL_SOCKET)")

    def handle(self, *args, socket, **options):
        from agents.llm.local_model import load_model  # imports llama_cpp: only this process needs it

        path = Path(socket or settings.TRON_LOCAL_MODEL_SOCKET)
        try:
            model = load_model()
        except TurnError as exc:
            raise CommandError(exc.message) from exc
        asyncio.run(self._serve(path, model))

    async def _serve(self, path: Path, model) -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):  # stopped by a signal: a clean exit
            await model_server.run(
                path,
                model,
                queue_length=settings.TRON_LOCAL_QUEUE_LENGTH,
                max_tokens=settings.TRON_LOCAL_MAX_TOKENS,
                stall_seconds=settings.TRON_LLM_TIMEOUT,
                on_waiting=metrics.set_local_model_queue_depth,  # /metrics in any web process reads it
            )
