"""Why a turn could not be answered: the errors the core raises. They say what happened and carry no
protocol: each edge (the chat API, the ElevenLabs socket, VAPI, Slack, the life loop) maps them to its
own answer in one table.

`code` is a stable name for the kind of failure (metrics label it so, the chat API sends it as OpenAI's
`code`); `retry_after` is the seconds after which the same request may succeed, when that is known.
"""


class TurnError(Exception):
    code = "turn_failed"

    def __init__(self, message: str, *, retry_after: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        if code is not None:
            self.code = code


# -- refused before the turn began: nothing of it is stored ------------------------------------------


class MessageTooLong(TurnError):
    """A message is longer than TRON_MAX_MESSAGE_CHARS, or (code `too_many_messages`) the request has
    more than TRON_MAX_MESSAGES messages."""

    code = "message_too_long"


class NoPersona(TurnError):
    """No persona is configured (or all are switched off)."""

    code = "no_persona"


class ConversationBusy(TurnError):
    """An earlier turn of the same caller still runs, past TRON_TURN_WAIT_SECONDS."""

    code = "conversation_busy"


class OverBudget(TurnError):
    """The persona has spent its budget for today (UTC)."""

    code = "insufficient_quota"


class CallerLimited(TurnError):
    """This caller has used its allowance: too many requests this minute, or its spend for today."""

    code = "rate_limit_exceeded"


class Overloaded(TurnError):
    """The server runs all the processes it may (TRON_MAX_RUNNING_PROCESSES)."""

    code = "server_overloaded"


class ServerDraining(TurnError):
    """This server is stopping (SIGTERM): it finishes the turns it runs and takes no new ones. Another
    node (or this one, restarted) takes the request; `retry_after` says when to ask again."""

    code = "server_draining"


# -- the model could not answer ----------------------------------------------------------------------


class ModelUnavailable(TurnError):
    """The model cannot take the request now: the local model is (re)starting or its queue is full, or
    the upstream said it is overloaded (429/503). Worth retrying after `retry_after`."""

    code = "model_unavailable"


class UpstreamRejected(TurnError):
    """The model refused the request itself (too long, a bad parameter): retrying cannot help."""

    code = "upstream_rejected"


class UpstreamTimeout(TurnError):
    """The model stayed silent longer than TRON_LLM_TIMEOUT."""

    code = "upstream_timeout"


class UpstreamFailed(TurnError):
    """The model's server failed, could not be reached, or sent something unreadable."""

    code = "upstream_error"


# -- the server stopped ----------------------------------------------------------------------------------


class ServerStopped(TurnError):
    """The turn was still running when its server stopped, TRON_DRAIN_SECONDS after SIGTERM."""

    code = "server_stopped"


class TurnLost(TurnError):
    """The turn was ended as lost while it ran: its server did not renew its claim in time (a stalled
    event loop, a database backlog), and the caller's next turn or the sweep ended it as failed,
    recording its open model call. It stops where it is; nothing of it is recorded twice."""

    code = "turn_lost"


# -- ours ----------------------------------------------------------------------------------------------


class InternalError(TurnError):
    """A bug of ours; the details are in the log."""

    code = "internal_error"


# Turns that fail with these never began: nothing they asked for is stored.
REFUSED = (MessageTooLong, NoPersona, ConversationBusy, OverBudget, CallerLimited, Overloaded, ServerDraining)
