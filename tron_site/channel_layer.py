"""The channel layer of `make run` without REDIS_URL: the web processes of one machine reach each other's
WebSocket consumers (ElevenLabs' "conversation replaced") with no broker.

It is Channels' in-memory layer, plus one thing: a message sent to a group also goes, as a datagram, to
every other process of the same deployment that has consumers in some group, and each delivers it to
its own members of that group. Such a process binds a Unix datagram socket (named for its pid) in a
directory of its own user, named for the database the processes share: processes of one database are
one deployment, and nothing else can write there. A message to one channel name stays in its process
(Tron sends none across: every message between consumers goes to a group, integrations/broadcast.py).
With REDIS_URL set, the Redis layer does all of this and this one is not used (docs/decisions.md).
"""

import asyncio
import atexit
import contextlib
import hashlib
import json
import logging
import os
import socket
import stat
import tempfile
from pathlib import Path

from channels.layers import InMemoryChannelLayer
from django.db import connections

log = logging.getLogger(__name__)


def deployment_directory() -> Path:
    """The directory of this deployment's sockets: private to this user, named for the database."""
    db = connections["default"].settings_dict
    key = "|".join(str(db.get(part) or "") for part in ("ENGINE", "HOST", "PORT", "NAME"))
    name = f"tron-{os.getuid()}-channels-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    directory = Path(tempfile.gettempdir()) / name
    directory.mkdir(mode=0o700, exist_ok=True)
    mode = directory.lstat()
    if not stat.S_ISDIR(mode.st_mode) or mode.st_uid != os.getuid() or mode.st_mode & 0o077:
        raise PermissionError(f"{directory} is not a directory private to this user")
    return directory


class MachineChannelLayer(InMemoryChannelLayer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.directory = deployment_directory()
        self.address = self.directory / f"{os.getpid()}.sock"
        self.listening: tuple[asyncio.AbstractEventLoop, socket.socket] | None = None
        self.sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sender.setblocking(False)
        atexit.register(self.address.unlink, missing_ok=True)

    async def group_add(self, group, channel):
        await super().group_add(group, channel)
        self._listen()

    async def group_send(self, group, message):
        await super().group_send(group, message)
        self._tell_the_others(group, message)

    def _listen(self) -> None:
        """Receive other processes' group messages on this event loop (bound once per loop: tests run
        each on a loop of its own)."""
        loop = asyncio.get_running_loop()
        if self.listening is not None:
            if self.listening[0] is loop:
                return
            self.listening[1].close()  # its loop has ended
        self.address.unlink(missing_ok=True)  # left by an earlier process with this pid
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.address))
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._receive, sock)
        self.listening = (loop, sock)

    def _receive(self, sock: socket.socket) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                data = sock.recv(65536)
                try:
                    group, message = json.loads(data)
                except ValueError:
                    log.error("A channel-layer datagram was not understood: %.200r", data)
                    continue
                asyncio.ensure_future(InMemoryChannelLayer.group_send(self, group, message))

    def _tell_the_others(self, group: str, message: dict) -> None:
        try:
            data = json.dumps([group, message]).encode()
        except TypeError:
            log.error("A group message is not JSON, so it reached this process only: %.200r", message)
            return
        for peer in self.directory.glob("*.sock"):
            if peer == self.address:
                continue
            try:
                self.sender.sendto(data, str(peer))
            except (ConnectionRefusedError, FileNotFoundError):
                peer.unlink(missing_ok=True)  # a process that has ended
            except OSError as exc:  # a full queue (a process that has stopped reading), a datagram too large
                log.error("A group message could not reach the process at %s: %s", peer, exc)
