"""Where a turn's database work runs: the runtime's own long-lived threads, not one per request.

Django's ASGI handler gives every request a fresh thread, so each turn would open its own SQLite
connection and concurrent turns would queue on SQLite's write lock through its sleeping busy handler
(the benchmark showed this as the largest cost at 20 streams). So:

- writes go to one long-lived thread on SQLite (one connection, the writes taken in turn), or to a
  small pool of threads on PostgreSQL;
- the reads a prompt needs go to threads of their own on SQLite, so a turn about to call the model
  never waits behind other turns' writes (WAL lets readers run beside the writer); PostgreSQL uses
  the same pool for both.
"""

import functools
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

SQLITE_READERS = 2

_executors: dict[str, ThreadPoolExecutor] = {}


def _pooled() -> bool:
    return bool(settings.DATABASES["default"].get("OPTIONS", {}).get("pool"))


def _executor(kind: str) -> ThreadPoolExecutor:
    if _pooled():
        kind, workers = "pool", settings.TRON_DB_POOL_SIZE
    else:
        workers = 1 if kind == "write" else SQLITE_READERS
    executor = _executors.get(kind)
    if executor is None:
        executor = _executors.setdefault(
            kind, ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"tron-db-{kind}")
        )
    return executor


def db_write(func):
    """`func` as a coroutine function that runs on the runtime's writer thread(s)."""
    return sync_to_async(_releasing(func), thread_sensitive=False, executor=_executor("write"))


def db_read(func):
    """`func` as a coroutine function that runs on the runtime's reader threads; it must not write."""
    return sync_to_async(_releasing(func), thread_sensitive=False, executor=_executor("read"))


def _releasing(func):
    """`func`, handing its thread's pooled connection back when it returns or raises."""

    @functools.wraps(func)
    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            release_connection()

    return call


def release_connection() -> None:
    """Hand a pooled PostgreSQL connection back between the steps of a turn (db_read and db_write do
    it after every call).

    Under ASGI a request's thread keeps its connection until the response ends, which for a stream is
    minutes: without this, a few long calls would exhaust the pool. SQLite keeps its cheap connection.
    """
    if _pooled():
        connection.close()
