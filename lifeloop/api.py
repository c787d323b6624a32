"""/internal/life/trigger: run a life-loop activity by hand, as tron-api.md describes it."""

from django.http import JsonResponse
from ninja import Router
from ninja.errors import HttpError

from .runner import result_text, run_activity
from .trigger import ACTIVITY_NAMES, UnknownPersona, find_persona, life_personas, run_all

router = Router(tags=["internal"])


@router.api_operation(["GET", "POST"], "/life/trigger", summary="Run a life-loop activity now")
def trigger(request, activity: str = "", persona: str = ""):
    """Runs `activity` for `persona`, or for every persona whose life loop is on (concurrently), and
    answers when it is done with what it did."""
    activity, persona = activity.strip().lower(), persona.strip()
    if not activity:
        return JsonResponse(
            {
                "error": "Missing 'activity' query parameter",
                "activities": ACTIVITY_NAMES,
                "personas": [p.name for p in life_personas()],
                "examples": [
                    "/internal/life/trigger?activity=post&persona=Tony",
                    "/internal/life/trigger?activity=post (triggers all personas)",
                ],
            },
            status=400,
        )
    if activity not in ACTIVITY_NAMES:
        raise HttpError(400, f"Unknown activity {activity!r}; expected one of {', '.join(ACTIVITY_NAMES)}.")
    if persona:
        try:
            target = find_persona(persona)
        except UnknownPersona as exc:
            raise HttpError(400, str(exc)) from None
        return {
            "persona": target.name,
            "activity": activity,
            "result": result_text(run_activity(target, activity)),
        }
    runs = run_all(life_personas(), activity)
    return {"activity": activity, "results": {name: result_text(run) for name, run in runs.items()}}
