from django.contrib import admin
from django.urls import path

from . import views
from .api import api, chat_api, internal_api, webhooks_api

urlpatterns = [
    path("", views.home, name="home"),
    path("health", views.health, name="health"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("internal/", internal_api.urls),
    path("", chat_api.urls),
    path("", webhooks_api.urls),
]
