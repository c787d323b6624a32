"""A web process: Daphne, as its command line runs it, that drains before it stops.

    python -m tron_site.web [daphne's options] tron_site.asgi:application

takes Daphne's own options (`-b`/`-p`, `--fd`, ...) and runs Daphne's own command line with one change,
made through its public hook (`CommandLineInterface.server_class`): on SIGTERM or SIGINT the server
does not stop its reactor at once, which would cut every stream. Instead

0. for TRON_DRAIN_NOTICE_SECONDS, /health/ready answers 503 `draining` while turns are still taken, so
   a proxy's health check moves new callers to other nodes before any is refused;
1. it stops taking turns (agents.runtime.stop_taking_turns): new chat requests get 503 with
   Retry-After; ElevenLabs sockets hear 1012 and close (new and idle ones at once, the others when
   their reply ends);
2. it waits up to TRON_DRAIN_SECONDS for the turns it runs, the HTTP responses it sends and its
   sockets to end;
3. a turn still running then is ended as failed ("the server stopped ..."), and recorded;
4. it stops Daphne (Server.stop) and exits 0: the stop was asked for.

A second signal does not cut the drain short: the supervisor (tron_site/serve.py) or systemd kills a
process that overruns its bound. The signal handler only hands the work to the reactor, as Twisted's
own handlers do (`reactor.callFromThread`).
"""

import asyncio
import logging
import os
import signal
import sys

from daphne.cli import CommandLineInterface
from daphne.server import Server  # first: it installs Twisted's asyncio reactor
from twisted.internet import reactor

log = logging.getLogger("tron_site.web")

# After the last response ended, the reactor gets this long to write its last bytes before it closes
# the connections: a response's final bytes go out on the loop's next turns, not at once.
FLUSH_SECONDS = 0.2


class DrainingServer(Server):
    def __init__(self, application, *args, **kwargs):
        kwargs["signal_handlers"] = False  # ours, in run()
        super().__init__(self._counted(application), *args, **kwargs)
        self.responding = 0  # HTTP requests being answered and WebSockets open (till their disconnect ran)
        self.draining = False

    def _counted(self, application):
        async def counted(scope, receive, send):
            if scope["type"] not in ("http", "websocket"):
                return await application(scope, receive, send)
            self.responding += 1
            try:
                return await application(scope, receive, send)
            finally:
                self.responding -= 1

        return counted

    def run(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, frame: reactor.callFromThread(self.drain, signum))
        super().run()

    def drain(self, signum):
        if self.draining:
            return
        self.draining = True
        asyncio.ensure_future(self._drain_then_stop(signal.Signals(signum).name))

    async def _drain_then_stop(self, name: str) -> None:
        from django.conf import settings

        from agents.llm import get_provider
        from agents.runtime import announce_stop, finish_turns, stop_taking_turns, turns_in_flight
        from integrations.elevenlabs_ws import tell_open_sockets_to_reconnect

        notice, seconds = settings.TRON_DRAIN_NOTICE_SECONDS, settings.TRON_DRAIN_SECONDS
        if notice:
            announce_stop()
            log.info("%s: not ready; taking turns %d s more while proxies notice", name, notice)
            await asyncio.sleep(notice)
        stop_taking_turns()
        log.info(
            "%s: taking no new turns; %d running, given %d s to finish", name, turns_in_flight(), seconds
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        try:
            await tell_open_sockets_to_reconnect()  # idle ones now, the others when their reply ends
            ended = await finish_turns(seconds)
            if ended:
                log.warning("%d turns still ran after %d s: ended as failed", ended, seconds)
            # The streams of the turns that ended send their last events, and the sockets told to
            # reconnect close (their conversations end); requests that came meanwhile were refused at
            # once. A little past the bound at most: the stop must not hang on a client.
            while self.responding and loop.time() < deadline + 2:
                await asyncio.sleep(0.05)
            await asyncio.sleep(FLUSH_SECONDS)
            await get_provider().aclose()  # its connections to the upstream, closed rather than cut
        except Exception:  # the stop must happen whatever went wrong
            log.exception("draining failed; stopping")
        log.info("drained: stopping")
        self.stop()


class DrainingCLI(CommandLineInterface):
    server_class = DrainingServer


def main(argv=None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tron_site.settings")
    DrainingCLI().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
