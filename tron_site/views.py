"""The site's own pages: the landing page, the health check and the Prometheus metrics."""

from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from agents import metrics as tron_metrics


@require_safe
def home(request):
    return render(request, "home.html")


# GET and HEAD (uptime monitors use both); any other method is a 405, not CSRF's 403: nothing here
# changes state, so there is nothing for a CSRF token to protect.
@csrf_exempt
@require_safe
def health(request):
    return JsonResponse({"status": "ok"})


@csrf_exempt
@require_safe
def metrics(request):
    """Prometheus' text format; behind TRON_API_TOKEN when it is set (tron_site/middleware.py)."""
    body, content_type = tron_metrics.exposition()
    return HttpResponse(body, content_type=content_type)
