"""The spawn tree: processes as trees, parent → children (`GET /api/spawn-tree`).

A tree is a root process (one without a parent) and everything delegated below it. A *live* tree has a
pending or running process somewhere in it; `all` asks for every tree. Roots come newest first, one
page at a time, each with its whole tree: one query per level down, and as many up as the deepest live
process is deep to find the live roots.
"""

from .delegation import MAX_LEVELS
from .models import Process


def live_roots():
    """The roots of the trees that hold a pending or running process."""
    roots: set[int] = set()
    level = dict(Process.objects.active().values_list("pk", "parent_id"))
    seen = set(level)
    for _ in range(MAX_LEVELS):
        roots |= {pk for pk, parent_id in level.items() if parent_id is None}
        wanted = {parent_id for parent_id in level.values() if parent_id is not None} - seen
        if not wanted:
            break
        level = dict(Process.objects.filter(pk__in=wanted).values_list("pk", "parent_id"))
        seen |= wanted
    return Process.objects.filter(pk__in=roots)


def all_roots():
    return Process.objects.filter(parent__isnull=True)


def grow(roots: list[Process]) -> list[Process]:
    """`roots` with their trees: each process gets `tree_children` (oldest first)."""
    nodes = {root.pk: root for root in roots}
    for root in roots:
        root.tree_children = []
    level = list(nodes)
    for _ in range(MAX_LEVELS):
        if not level:
            break
        children = (
            Process.objects.filter(parent_id__in=level)
            .exclude(pk__in=list(nodes))
            .select_related("persona")
            .with_parent_id()
            .order_by("started_at", "id")
        )
        level = []
        for child in children:
            child.tree_children = []
            nodes[child.parent_id].tree_children.append(child)
            nodes[child.pk] = child
            level.append(child.pk)
    return roots
