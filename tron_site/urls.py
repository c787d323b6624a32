from django.contrib import admin
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.http import require_GET

from .api import api, chat_api, internal_api


@require_GET
def health(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("health", health, name="health"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("internal/", internal_api.urls),
    path("", chat_api.urls),
]
