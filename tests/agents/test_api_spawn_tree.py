"""GET /api/spawn-tree: processes as trees, parent → children; and every process's `parent_id`."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import Process
from tests.factories import ago, make_persona, make_process

pytestmark = pytest.mark.django_db

DONE = Process.Status.COMPLETED


@pytest.fixture
def sarah(db):
    return make_persona(name="Sarah", role="Tech Lead", kind="specialist")


def tree(client, query=""):
    response = client.get(f"/api/spawn-tree{query}")
    assert response.status_code == 200
    return response


def shape(nodes):
    """The trees as (agent, status, [children]) tuples."""
    return [(n["agent"], n["status"], shape(n["children"])) for n in nodes]


def test_no_processes_is_an_empty_list(client):
    response = tree(client)
    assert response.json() == [] and response["X-Total-Count"] == "0"


def test_a_live_tree_comes_whole_with_every_field(client, tony, sarah, maya):
    root = make_process(tony, task="Phone call", started_at=ago(minutes=5), input_tokens=10, cost_usd=1)
    child = make_process(
        sarah, parent=root, spawn_depth=1, task="Review", status=DONE, started_at=ago(minutes=4)
    )
    grandchild = make_process(maya, parent=child, spawn_depth=2, task="Numbers", started_at=ago(minutes=3))

    [node] = tree(client).json()

    assert shape([node]) == [("Tony", "running", [("Sarah", "completed", [("Maya", "running", [])])])]
    assert node["id"] == root.public_id and node["parent_id"] is None
    assert (node["task"], node["spawn_depth"], node["channel"]) == ("Phone call", 0, "http")
    assert node["started_at"].endswith("Z") and node["finished_at"] is None
    assert node["metrics"]["input_tokens"] == 10 and node["metrics"]["estimated_cost"] == 1.0
    [sarah_node] = node["children"]
    assert (sarah_node["id"], sarah_node["parent_id"], sarah_node["spawn_depth"]) == (
        child.public_id,
        root.public_id,
        1,
    )
    assert sarah_node["children"][0]["id"] == grandchild.public_id


def test_live_means_a_tree_with_a_pending_or_running_process(client, tony, sarah):
    finished = make_process(tony, status=DONE, started_at=ago(hours=2))
    make_process(sarah, parent=finished, status=DONE, spawn_depth=1)
    busy_below = make_process(tony, status=DONE, started_at=ago(hours=1))
    make_process(sarah, parent=busy_below, status=Process.Status.PENDING, spawn_depth=1)
    alone = make_process(tony, started_at=ago(minutes=1))

    live = tree(client).json()
    assert [n["id"] for n in live] == [alone.public_id, busy_below.public_id]  # newest root first
    assert shape(live)[1] == ("Tony", "completed", [("Sarah", "pending", [])])

    everything = tree(client, "?all=true")
    assert [n["id"] for n in everything.json()] == [alone.public_id, busy_below.public_id, finished.public_id]
    assert everything["X-Total-Count"] == "3"


def test_a_child_whose_parent_is_gone_is_a_root(client, tony, sarah):
    parent = make_process(tony, status=DONE)
    child = make_process(sarah, parent=parent, spawn_depth=1)
    parent.delete()

    [node] = tree(client).json()
    assert (node["id"], node["parent_id"], node["spawn_depth"]) == (child.public_id, None, 1)


def test_roots_are_paged(client, tony):
    oldest, middle, _newest = (make_process(tony, started_at=ago(minutes=m)) for m in (3, 2, 1))
    response = tree(client, "?limit=2&offset=1")
    assert [n["id"] for n in response.json()] == [middle.public_id, oldest.public_id]
    assert response["X-Total-Count"] == "3"


@pytest.mark.parametrize("query", ["?all=maybe", "?limit=0", "?offset=-1"])
def test_a_bad_parameter_is_a_400(client, query):
    response = client.get(f"/api/spawn-tree{query}")
    assert response.status_code == 400
    assert response.json()["error"]["message"]


def test_queries_grow_with_depth_not_with_processes(client, tony, sarah):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            tree(client)
        return len(ctx.captured_queries)

    root = make_process(tony)
    make_process(sarah, parent=root, spawn_depth=1)
    small = count()
    for _ in range(5):
        make_process(sarah, parent=make_process(tony), spawn_depth=1)
    assert count() == small


def test_processes_show_their_parent_id(client, tony, sarah):
    parent = make_process(tony, started_at=ago(minutes=1))
    child = make_process(sarah, parent=parent, spawn_depth=1)

    rows = {row["id"]: row["parent_id"] for row in client.get("/api/processes").json()}
    assert rows == {parent.public_id: None, child.public_id: parent.public_id}
    detail = client.get(f"/api/processes/{child.public_id}").json()
    assert (detail["parent_id"], detail["spawn_depth"], detail["result"], detail["delivered_at"]) == (
        parent.public_id,
        1,
        "",
        None,
    )
