"""Where a turn's database work runs: the runtime's own long-lived threads, not one per request."""

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

_db_executor: ThreadPoolExecutor | None = None


def in_db_thread(func):
    """Run `func` on the runtime's own database threads: one for SQLite, TRON_DB_POOL_SIZE otherwise.

    Django's ASGI handler gives every request a fresh thread, so each turn would open its own SQLite
    connection and concurrent turns would queue on SQLite's write lock through its sleeping busy
    handler (the benchmark showed this as the largest cost at 20 streams). One long-lived thread keeps
    one connection and takes the writes in turn; PostgreSQL gets a small pool of threads instead.
    """
    global _db_executor
    if _db_executor is None:
        pooled = bool(settings.DATABASES["default"].get("OPTIONS", {}).get("pool"))
        workers = settings.TRON_DB_POOL_SIZE if pooled else 1
        _db_executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tron-db")
    return sync_to_async(func, thread_sensitive=False, executor=_db_executor)


def release_connection() -> None:
    """Hand a pooled PostgreSQL connection back between the steps of a turn.

    Under ASGI a request's thread keeps its connection until the response ends, which for a stream is
    minutes: without this, a few long calls would exhaust the pool. SQLite keeps its cheap connection.
    """
    if settings.DATABASES["default"].get("OPTIONS", {}).get("pool"):
        connection.close()
