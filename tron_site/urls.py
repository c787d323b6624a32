from django.contrib import admin
from django.urls import path

from integrations.slack import views as slack_views

from . import views
from .api import api, chat_api, internal_api, webhooks_api

urlpatterns = [
    path("", views.home, name="home"),
    path("health", views.health, name="health"),
    path("health/ready", views.ready, name="health-ready"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("internal/", internal_api.urls),
    path("slack/events", slack_views.events, name="slack-events"),
    path("", chat_api.urls),
    path("", webhooks_api.urls),
]
