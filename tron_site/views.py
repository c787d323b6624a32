"""The site's own pages: the landing page and the health check."""

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe


@require_safe
def home(request):
    return render(request, "home.html")


# GET and HEAD (uptime monitors use both); any other method is a 405, not CSRF's 403: nothing here
# changes state, so there is nothing for a CSRF token to protect.
@csrf_exempt
@require_safe
def health(request):
    return JsonResponse({"status": "ok"})
