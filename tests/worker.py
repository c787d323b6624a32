"""A django-q2 worker a test runs by hand: with the `queued_tasks` fixture (tests/conftest.py) tasks are
queued (the ORM broker, as in `make run`) rather than run inline, and `run_queued()` then runs them,
each through django-q2's own worker code.

    def test_...(queued_tasks):
        ...                         # something queues a task; it waits in the broker
        assert queued_tasks() == 1  # the worker ran it
"""

from django_q.brokers import get_broker
from django_q.tasks import _sync  # django-q2's run of one package through its worker and monitor


def run_queued() -> int:
    """Run every task waiting in the broker (and those they queue); returns how many ran."""
    broker, ran = get_broker(), 0
    while broker.queue_size():
        for ack_id, package in broker.dequeue() or []:
            _sync(package)
            broker.acknowledge(ack_id)
            ran += 1
    return ran
