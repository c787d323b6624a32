"""Per-process copies of what every turn reads and operators rarely change (the personas, each persona's
prompt context, model prices), so a turn does not query for them.

    personas = ProcessCache("personas")
    personas.get_or_load("all", load_personas)   # load_personas(), kept for TRON_CACHE_SECONDS

A save or delete of a model the cache depends on drops it in this process at once (receivers connected
from AppConfig.ready(), `clear_on_change`); every other process loads again within TRON_CACHE_SECONDS.
0 keeps nothing.
"""

import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db.models.signals import post_delete, post_save


class ProcessCache:
    every: list["ProcessCache"] = []

    def __init__(self, name: str):
        self.name = name
        self._kept: dict = {}  # key -> (when loaded, value)
        self._lock = threading.Lock()
        self._generation = 0  # bumped by each clear: a load that raced a change is not kept
        ProcessCache.every.append(self)

    def get_or_load(self, key, load: Callable):
        """The value kept for `key`, else `load()`'s, kept from now."""
        ttl = settings.TRON_CACHE_SECONDS
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(key)
            generation = self._generation
        if kept is not None and now - kept[0] < ttl:
            return kept[1]
        value = load()
        if ttl > 0:
            with self._lock:
                if generation == self._generation:
                    self._kept[key] = (now, value)
        return value

    def clear(self, **_signal_kwargs) -> None:
        with self._lock:
            self._kept.clear()
            self._generation += 1

    def clear_on_change(self, *models) -> None:
        """Drop this cache whenever a row of `models` is saved or deleted in this process."""
        for model in models:
            uid = f"cache.{self.name}.{model._meta.label}"
            post_save.connect(self.clear, sender=model, dispatch_uid=f"{uid}.saved", weak=False)
            post_delete.connect(self.clear, sender=model, dispatch_uid=f"{uid}.deleted", weak=False)


def clear_all() -> None:
    """Forget every cache of this process (a test's fresh database)."""
    for cache in ProcessCache.every:
        cache.clear()
