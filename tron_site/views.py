"""The site's own pages: the landing page, the health and readiness checks and the Prometheus metrics."""

from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from agents import metrics as tron_metrics

from . import readiness


@require_safe
def home(request):
    return render(request, "home.html")


# GET and HEAD (uptime monitors use both); any other method is a 405, not CSRF's 403: nothing here
# changes state, so there is nothing for a CSRF token to protect.
@csrf_exempt
@require_safe
def health(request):
    return JsonResponse({"status": "ok"})


# A proxy sends callers only to nodes that answer 200 here (tron_site/readiness.py). 503 names what is
# missing; Retry-After is how soon to ask again.
READY_RETRY_AFTER = 2


@csrf_exempt
@require_safe
def ready(request):
    problems = readiness.missing()
    if problems:
        return JsonResponse(
            {"status": "unavailable", "missing": problems},
            status=503,
            headers={"Retry-After": str(READY_RETRY_AFTER)},
        )
    return JsonResponse({"status": "ready"})


@csrf_exempt
@require_safe
def metrics(request):
    """Prometheus' text format; behind TRON_API_TOKEN when it is set (tron_site/middleware.py)."""
    body, content_type = tron_metrics.exposition()
    return HttpResponse(body, content_type=content_type)
