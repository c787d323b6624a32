"""The one read every turn makes before its model call, done on the event loop when the database is
SQLite.

A turn must know whether its caller has an open session it continues before the prompt can be built.
Through the ORM that read runs on a database thread, and the trip there and back waits for the GIL
while the event loop serves other streams: at 20 concurrent streams it was about 2 ms of the time to
first token, a third of what Tron added (docs/benchmarks.md). On SQLite the read itself is one indexed
lookup of tens of microseconds, so here it runs in place, on a read-only connection of the calling
thread's own (in WAL mode a reader never waits for the writer). The answer is a hint, as the ORM
read's was: `sessions.open_session` re-checks it in the same statement that marks the session seen.

PostgreSQL (a network round trip per query) and in-memory SQLite databases keep the ORM read on the
database threads: `available()` says which applies. A failed lookup (a locked or unreadable file)
returns `UNKNOWN`, and the caller falls back to the ORM read.
"""

import functools
import logging
import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections

from .models import CallerSession, Persona, Process

log = logging.getLogger(__name__)

UNKNOWN = object()  # the lookup could not be made here: read through the ORM instead

_local = threading.local()  # this thread's read-only connection and the database file it is open on


def available() -> bool:
    connection = connections[DEFAULT_DB_ALIAS]
    return connection.vendor == "sqlite" and not connection.is_in_memory_db()


def continuing_session(caller_id: str, persona: Persona, cutoff: datetime):
    """As `sessions.continuing_session`: the caller's open session when this turn continues it (live
    process, seen since `cutoff`, same persona), else None; `UNKNOWN` when it could not be read here.

    The session and its process come back with only the fields a turn uses (the rest deferred)."""
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        cursor = _connection(connection.settings_dict["NAME"]).execute(
            _lookup_sql(), (connection.ops.adapt_datetimefield_value(cutoff), caller_id)
        )
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()  # ends the statement, and with it the read snapshot
    except Exception:  # noqa: BLE001 - sqlite3.Error and OS errors alike: the ORM read still works
        log.warning("Could not look up the session of %s on the event loop", caller_id, exc_info=True)
        _close()
        return UNKNOWN
    if row is None:
        return None
    session_id, process_id, public_id, persona_id, live, fresh = row
    if not (live and fresh and persona_id == persona.pk):
        return None
    process = _partial(Process, id=process_id, public_id=public_id, persona_id=persona_id)
    session = _partial(CallerSession, id=session_id, caller_id=caller_id, process_id=process_id)
    session.process = process
    return session


def _connection(name: str) -> sqlite3.Connection:
    if getattr(_local, "name", None) != name:  # first use on this thread, or the database was switched
        _close()
        uri = f"{Path(name).resolve().as_uri()}?mode=ro"
        # Autocommit: a SELECT holds its snapshot only while it runs. No busy wait on the event loop:
        # a reader in WAL mode is not blocked by the writer, and anything else falls back to the ORM.
        _local.connection = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=0)
        _local.name = name
    return _local.connection


def _close() -> None:
    connection = getattr(_local, "connection", None)
    _local.connection = _local.name = None
    if connection is not None:
        connection.close()


@functools.cache
def _lookup_sql() -> str:
    """The caller's open session joined to its process, from the models' own table and column names:
    `(session id, process id, public id, persona id, process live, seen since the cutoff)`."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    session, process = CallerSession._meta, Process._meta

    def s(field):
        return f"s.{quote(session.get_field(field).column)}"

    def p(field):
        return f"p.{quote(process.get_field(field).column)}"

    return (
        f"SELECT {s('id')}, {s('process')}, {p('public_id')}, {p('persona')}, "
        f"{p('finished_at')} IS NULL, {s('last_seen_at')} >= ? "
        f"FROM {quote(session.db_table)} s JOIN {quote(process.db_table)} p ON {p('id')} = {s('process')} "
        f"WHERE {s('caller_id')} = ? AND {s('ended_at')} IS NULL LIMIT 1"
    )


def _partial(model, **values):
    """An instance as the ORM loads it with only these fields (attnames); the others are deferred."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(DEFAULT_DB_ALIAS, names, [values[name] for name in names])
