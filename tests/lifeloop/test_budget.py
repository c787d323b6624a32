"""A life-loop activity of a persona that has spent its budget: refused before its model is asked,
recorded as a failed run with the reason; other personas' activities go on."""

from decimal import Decimal

from lifeloop.models import Activity, ActivityRun
from lifeloop.runner import run_activity


def test_an_activity_over_budget_fails_with_the_reason_and_others_go_on(crew, llm):
    crew["tony"].budget_usd = Decimal("0")
    crew["tony"].save()
    llm.reset(tokens=["A quiet day.\n\nImportance: 2"])

    refused = run_activity(crew["tony"], Activity.JOURNAL)
    done = run_activity(crew["maya"], Activity.JOURNAL)

    assert refused.status == ActivityRun.Status.FAILED
    assert refused.error.startswith("Tony has used today's budget ($0.00 per UTC day")
    assert done.status == ActivityRun.Status.COMPLETED
    assert len(llm.requests) == 1  # Maya's; Tony's model was never asked
