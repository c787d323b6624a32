"""What `GET /health/ready` checks: whether this node can take turns now.

`/health` says the process is alive; this says it is worth sending callers to. Each check that fails
names itself in the answer (`missing`): the database does not answer, migrations are not all applied
(Django's own migration plan, as `migrate --check` computes it; once empty it stays so for the life of
the process), the local model cannot answer (when it is the provider: agents/llm/local.py asks it), or
the node is draining before it stops (tron_site/web.py). Remote upstreams are not asked (see
LLMProvider.unready).
"""

import logging

from django.db import DEFAULT_DB_ALIAS, Error, connections
from django.db.migrations.executor import MigrationExecutor

from agents.llm import get_provider
from agents.runtime import stop_announced, taking_turns

log = logging.getLogger(__name__)

_migrated = False  # every migration was applied when last looked: a running node does not unapply them


def missing() -> dict[str, str]:
    """{check: what is wrong} for each check that fails; empty when the node is ready."""
    problems = {}
    if not taking_turns():
        problems["draining"] = "this node is stopping: it finishes its turns in flight and takes no new ones"
    elif stop_announced():
        problems["draining"] = "this node is about to stop: it takes turns a few seconds more, then drains"
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Error:
        log.warning("/health/ready: the database does not answer", exc_info=True)
        problems["database"] = "the database does not answer (the node's log has the error)"
    else:
        if pending := unapplied_migrations(connection):
            shown = ", ".join(pending[:5]) + (", …" if len(pending) > 5 else "")
            problems["migrations"] = (
                f"{len(pending)} migrations are not applied ({shown}): run `manage.py migrate`"
            )
    if reason := get_provider().unready():
        problems["model"] = reason
    return problems


def unapplied_migrations(connection) -> list[str]:
    global _migrated
    if _migrated:
        return []
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    pending = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
    _migrated = not pending
    return pending
