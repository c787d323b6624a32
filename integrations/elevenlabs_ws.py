"""The agent side of ElevenLabs' Conversational AI WebSocket protocol, for text
(../shared/docs/protocols.md §2b): ElevenLabs' client SDKs and widgets talk to a persona here.

    client                                   Tron
    conversation_initiation_client_data  ->  conversation_initiation_metadata (the conversation id)
    user_message {text}                  ->  agent_chat_response_part start, delta..., stop; agent_response
    user_message while a reply streams   ->  the reply stops; interruption {event_id}; the new reply
    contextual_update {text}             ->  kept: system context for the following turns
    user_activity, pong, audio chunks    ->  accepted (audio is ignored: text only)
                                         <-  ping {event_id} every PING_SECONDS
    a frame that is not the protocol     ->  error {error_event}; the connection stays
    (the server is stopping)             <-  error 1012 ("service restart": connect again), then the
                                             socket closes (a new or idle socket at once; one that
                                             streams a reply when the reply ends)

`agent_id` in the query names the persona. Each socket is one conversation: a session and a process of
its own (the caller is `elevenlabs-user-<user_id>` when the client names its user, else `conv-<conversation
id>`), whose turns run in the engine like any other; the process completes when the socket closes, and
the caller's memory is updated then. Protocol only: the turn is agents.runtime.
"""

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import time
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from agents import errors
from agents.callers import Caller, clean_id
from agents.dbthread import db_write, release_connection
from agents.memory import remember_later
from agents.models import CallerSession, Channel
from agents.personas import resolve_persona
from agents.runtime import Opened, Text, TurnEnd, TurnFailed, TurnInput, run_turn, taking_turns

from . import broadcast
from .conversations import end_conversation, start_conversation
from .elevenlabs_frames import (
    INITIATION,
    BadFrame,
    ContextualUpdate,
    Initiation,
    MultimodalMessage,
    Pong,
    UserMessage,
    read_frame,
)
from .identify import ELEVENLABS_USER_PREFIX
from .trust import socket_principal

log = logging.getLogger(__name__)

SUBPROTOCOL = "convai"
BEARER_SUBPROTOCOL = "bearer."
RESTARTING = 1012  # WebSocket's "service restart": this server stops; connect again
PING_SECONDS = 20.0  # ElevenLabs' own server pings about this often; clients answer with a pong
AUDIO_FORMAT = "pcm_16000"  # announced (the client SDKs read it); no audio is sent or read
TASK = "ElevenLabs conversation"

# The `code` of the error event the socket sends for each error of the core (agents.errors), as
# WebSocket close codes read: 1008 the message itself, 1013 try again later, 1011 the server, 1012 the
# server restarts. The socket stays open (the caller may go on), except after 1012: then it closes
# (with 1000 and a reason: Daphne lets an application close only with 1000 or 3000-4999), and the
# client connects again, to a server that takes turns.
ERROR_CODES = {
    errors.MessageTooLong: 1008,
    errors.UpstreamRejected: 1008,
    errors.ConversationBusy: 1013,
    errors.OverBudget: 1013,
    errors.CallerLimited: 1013,
    errors.Overloaded: 1013,
    errors.ModelUnavailable: 1013,
    errors.ServerDraining: 1012,
    errors.ServerStopped: 1012,
    errors.NoPersona: 1011,
    errors.UpstreamTimeout: 1011,
    errors.UpstreamFailed: 1011,
    errors.TurnLost: 1011,
    errors.InternalError: 1011,
}


STOPPING = "This server is stopping; connect again."
_open: set["ConversationConsumer"] = set()  # this process's accepted sockets, told when it stops


async def tell_open_sockets_to_reconnect() -> None:
    """The server has stopped taking turns (tron_site/web.py): every open socket hears 1012 and closes,
    at once when idle, else when the reply it streams ends (ConversationConsumer._answer)."""
    for consumer in list(_open):
        if consumer.reply is None or consumer.reply.done():
            try:
                await consumer.restart()
            except Exception:  # one socket's failure must not keep the others open
                log.exception("Could not tell an ElevenLabs socket to reconnect")


def error_code(error: errors.TurnError) -> int:
    return next((ERROR_CODES[kind] for kind in type(error).__mro__ if kind in ERROR_CODES), 1011)


class ConversationConsumer(AsyncWebsocketConsumer):
    restarting = False  # told to connect again (restart): nothing more is sent or read

    async def connect(self):
        if not self._authorized():
            await self.close()  # before accept: the handshake is refused (403)
            return
        offered = self.scope.get("subprotocols") or []
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.persona_name = (query.get("agent_id") or [""])[0].strip() or None
        self.conversation_id = f"conv_{secrets.token_hex(12)}"
        self.caller: Caller | None = None
        self.group: str | None = None
        self.context: dict[str, str] = {}  # contextual updates: the latest per context id
        self.context_chars = 0  # their length together
        self.reply: asyncio.Task | None = None
        self.reply_event_id = 0
        self.event_id = 0
        self.pings: dict[int, float] = {}
        self.ping_ms: int | None = None
        # The handshake's W3C trace context (a tracing client or proxy sends it): each turn continues it.
        headers = dict(self.scope.get("headers") or [])
        self.traceparent, self.tracestate = (
            headers.get(name, b"").decode("latin-1") for name in (b"traceparent", b"tracestate")
        )
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
        self.pinger = asyncio.ensure_future(self._ping_forever())
        _open.add(self)
        if not taking_turns():  # the server is stopping: the client connects again, elsewhere
            await self.restart()

    def _authorized(self) -> bool:
        """With TRON_SOCKET_KEY (the key for browsers and apps) or TRON_CHAT_API_KEY set, the client sends
        one of them: as `token` in the query, as a `bearer.<key>` subprotocol (ElevenLabs' JS SDK), or as
        an Authorization bearer header."""
        keys = [key.encode() for key in (settings.TRON_SOCKET_KEY, settings.TRON_CHAT_API_KEY) if key]
        if not keys:
            return True
        given = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("token", [])
        given += [
            p[len(BEARER_SUBPROTOCOL) :]
            for p in self.scope.get("subprotocols") or []
            if p.startswith(BEARER_SUBPROTOCOL)
        ]
        headers = dict(self.scope.get("headers") or [])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer":
            given.append(token.strip())
        return any(hmac.compare_digest(value.encode(), key) for value in given if value for key in keys)

    # -- frames from the client -------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.restarting:
            return  # told to connect again, elsewhere: what still comes is for another server
        if text_data is None:
            return await self._refuse("Frames are JSON text; a binary frame is not part of the protocol.")
        try:
            frame = read_frame(text_data)
        except BadFrame as exc:
            if self.caller is None and exc.kind not in (None, INITIATION):
                await self._initiate(Initiation())  # the metadata comes first, as for any frame
            return await self._refuse(exc.message)
        if frame is None:
            return  # audio: this server speaks text only
        if isinstance(frame, Initiation):
            return await self._initiate(frame)
        if self.caller is None:
            await self._initiate(
                Initiation()
            )  # a client that skipped the handshake still gets the metadata first
        if isinstance(frame, UserMessage):
            return await self._user_message(frame.text)
        if isinstance(frame, MultimodalMessage):
            return await self._user_message(frame.words)
        if isinstance(frame, ContextualUpdate):
            return await self._contextual_update(frame)
        if isinstance(frame, Pong):
            return self._pong(frame.event_id)

    async def _initiate(self, frame: Initiation):
        if self.caller is not None:
            return await self._refuse("The conversation has started already.")
        user_id = "" if frame.user_id is None else str(frame.user_id).strip()
        caller_id = clean_id(
            f"{ELEVENLABS_USER_PREFIX}{user_id}" if user_id else f"conv-{self.conversation_id}"
        )
        self.caller = Caller(caller_id, Channel.ELEVENLABS, self.conversation_id)
        client = self.scope.get("client") or ("", 0)
        self.principal = socket_principal(self.caller, client[0])
        # Each socket is a conversation of its own: the caller's older one, if still open somewhere,
        # closes (a caller has one open session), then this one joins the caller's group.
        await broadcast.conversation_replaced(caller_id, self.conversation_id)
        self.group = broadcast.caller_group(caller_id)
        with contextlib.suppress(Exception):  # a layer that cannot be reached costs the replacing only
            await self.channel_layer.group_add(self.group, self.channel_name)
        try:
            await db_write(_start)(self.caller, self.principal, self.persona_name)
        except (errors.NoPersona, errors.Overloaded) as exc:  # its turns are refused the same way
            await self._error(exc.message, exc.code, code=error_code(exc))
        await self._send(
            "conversation_initiation_metadata",
            conversation_initiation_metadata_event={
                "conversation_id": self.conversation_id,
                "agent_output_audio_format": AUDIO_FORMAT,
                "user_input_audio_format": AUDIO_FORMAT,
            },
        )

    async def _contextual_update(self, frame: ContextualUpdate):
        text = frame.text
        if text is None or not text.strip():
            return await self._refuse("contextual_update needs its `text`.")
        key = f"update-{len(self.context)}" if frame.context_id is None else str(frame.context_id)
        text = text.strip()
        replaced = self.context.get(key)
        # Each is a message of every later turn, beside the user's: a turn of more than
        # TRON_MAX_MESSAGES messages would be refused.
        most = settings.TRON_MAX_MESSAGES - 1
        if replaced is None and len(self.context) >= most:
            return await self._too_long(
                f"This conversation has {most:,} contextual updates, the most a turn carries "
                "(TRON_MAX_MESSAGES); this one is not kept: send it with an earlier one's context_id."
            )
        # Counted as they change, not summed again: a frame costs the same however many came before.
        chars = self.context_chars - len(replaced or "") + len(text)
        limit = settings.TRON_MAX_MESSAGE_CHARS
        if chars > limit:
            return await self._too_long(
                f"The contextual updates would come to more than {limit:,} characters "
                "(TRON_MAX_MESSAGE_CHARS); this one is not kept."
            )
        self.context[key] = text
        self.context_chars = chars

    async def _user_message(self, text):
        if text is None:
            return  # a text-mode signal, not words
        if not text.strip():
            return await self._refuse("user_message needs its `text`.")
        if len(text) > settings.TRON_MAX_MESSAGE_CHARS:
            return await self._too_long(
                f"The message is {len(text):,} characters long; the most this server takes in one "
                f"message is {settings.TRON_MAX_MESSAGE_CHARS:,} (TRON_MAX_MESSAGE_CHARS)."
            )
        await self._interrupt()
        self.event_id += 1
        self.reply_event_id = self.event_id
        self.reply = asyncio.ensure_future(self._answer(text, self.event_id))

    async def _interrupt(self):
        """Stop the reply that is streaming, if any: its turn records what was said, then the client
        hears `interruption` for that reply's event id."""
        if self.reply is None or self.reply.done():
            return
        self.reply.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reply
        await self._send("interruption", interruption_event={"event_id": self.reply_event_id})

    # -- a reply -----------------------------------------------------------------------------------------

    async def _answer(self, text: str, event_id: int):
        context = [{"role": "system", "content": update} for update in self.context.values()]
        turn = TurnInput(
            messages=[*context, {"role": "user", "content": text}],
            caller=self.caller,
            principal=self.principal,
            persona_name=self.persona_name,
            task=TASK,
            traceparent=self.traceparent,
            tracestate=self.tracestate,
        )
        started = False
        try:
            async with contextlib.aclosing(run_turn(turn)) as events:
                async for event in events:
                    if isinstance(event, Opened):
                        await self._part("start", "", event_id)
                        started = True
                    elif isinstance(event, Text):
                        await self._part("delta", event.text, event_id)
                    elif isinstance(event, TurnEnd):
                        await self._part("stop", "", event_id)
                        await self._send(
                            "agent_response",
                            agent_response_event={"agent_response": event.text, "event_id": event_id},
                        )
                    elif isinstance(event, TurnFailed):
                        if started:
                            await self._part("stop", "", event_id)
                        error = event.error
                        if error_code(error) == RESTARTING:
                            await self.restart(error)
                        else:
                            await self._error(error.message, error.code, code=error_code(error))
            if not taking_turns():  # the server stopped while this reply streamed: it is told now
                await self.restart()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug of ours, or the socket gone mid-reply: the connection must not die of it
            log.exception("An ElevenLabs reply failed")

    async def _part(self, kind: str, text: str, event_id: int):
        await self._send(
            "agent_chat_response_part", text_response_part={"text": text, "type": kind, "event_id": event_id}
        )

    # -- pings -----------------------------------------------------------------------------------------

    async def _ping_forever(self):
        while True:
            await asyncio.sleep(PING_SECONDS)
            self.event_id += 1
            self.pings[self.event_id] = time.monotonic()
            while len(self.pings) > 10:  # pings a client never answered
                self.pings.pop(next(iter(self.pings)))
            await self._send("ping", ping_event={"event_id": self.event_id, "ping_ms": self.ping_ms})

    def _pong(self, event_id: int | None):
        sent = self.pings.pop(event_id, None) if event_id is not None else None
        if sent is not None:
            self.ping_ms = int((time.monotonic() - sent) * 1000)

    # -- the end -----------------------------------------------------------------------------------------

    async def conversation_replaced(self, message):
        if message.get("conversation_id") == self.conversation_id:
            return
        await self._error("A newer conversation of the same user replaced this one.", "replaced", code=1000)
        await self.close(code=1000)

    async def disconnect(self, code):
        _open.discard(self)
        if not hasattr(self, "pinger"):
            return  # refused before it was accepted
        self.pinger.cancel()
        if self.reply is not None and not self.reply.done():
            self.reply.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reply  # the turn records what was said
        if self.group:
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.caller is not None:
            for process_id in await db_write(_finish)(self.caller):
                await _queue_memory(process_id)

    # -- sending -----------------------------------------------------------------------------------------

    async def _send(self, kind: str, **payload):
        await self.send(text_data=json.dumps({"type": kind, **payload}, ensure_ascii=False))

    async def restart(self, error: errors.TurnError | None = None):
        """Tell the client to connect again (1012: this server stops), once, and close."""
        if self.restarting:
            return
        self.restarting = True
        error = error or errors.ServerDraining(STOPPING)
        await self._error(error.message, error.code, code=RESTARTING)
        await self.close(code=1000, reason="The server is restarting: connect again.")

    async def _refuse(self, message: str):
        await self._error(message, "invalid_message", code=1008)

    async def _too_long(self, message: str):
        await self._error(message, "message_too_long", code=1009)

    async def _error(self, message: str, reason: str, *, code: int):
        await self._send(
            "error", error_event={"code": code, "message": message, "error_type": reason, "reason": reason}
        )


def _start(caller: Caller, principal, persona_name: str | None) -> None:
    start_conversation(caller, resolve_persona(persona_name), principal, task=TASK, adopt_unmarked=False)


def _finish(caller: Caller) -> list[int]:
    """End this conversation's sessions (a turn may have opened a new one after the idle sweep ended the
    first); the ids of their processes."""
    ended = []
    for session in CallerSession.objects.open().filter(
        caller_id=caller.caller_id, provider_call_id=caller.provider_call_id
    ):
        if end_conversation(session, remember=False):
            ended.append(session.process_id)
    return ended


def _queue_memory_now(process_id: int) -> None:
    try:
        remember_later(process_id)
    finally:
        release_connection()


# Not on the runtime's writer thread: a task queued in django-q2's sync mode runs at once, in the
# queuing thread, and its model call needs the writer thread itself.
_queue_memory = sync_to_async(_queue_memory_now, thread_sensitive=False)
