"""The admin site: Django's, with the live dashboard on its home page.

The home page renders the dashboard with the page; its script then fetches the same fragment from
`dashboard/` every TRON_DASHBOARD_REFRESH_SECONDS and swaps it in, so first paint and updates come from
one template (templates/admin/dashboard.html) and the page works without the script.
"""

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path

from agents import dashboard as agents_dashboard
from lifeloop import dashboard as lifeloop_dashboard

DASHBOARD_PERMISSIONS = ("agents.view_process", "agents.view_llmcall")


class TronAdminSite(admin.AdminSite):
    site_header = "Tron control panel"
    site_title = "Tron control panel"
    index_title = "Operations"
    # The lists need the width (at 1400 px the sidebar and the filters left the tables 730 px); the
    # app list is on the home page, and the breadcrumbs lead there.
    enable_nav_sidebar = False

    def get_urls(self):
        return [
            path("dashboard/", self.admin_view(self.dashboard_view), name="dashboard"),
            *super().get_urls(),
        ]

    def index(self, request, extra_context=None):
        if can_see_dashboard(request.user):
            extra_context = {**dashboard_context(), **(extra_context or {})}
        return super().index(request, extra_context)

    def dashboard_view(self, request):
        """The dashboard alone, as the home page's script polls it."""
        if not can_see_dashboard(request.user):
            raise PermissionDenied
        return TemplateResponse(request, "admin/dashboard.html", dashboard_context())


def can_see_dashboard(user) -> bool:
    return user.has_perms(DASHBOARD_PERMISSIONS)


def dashboard_context() -> dict:
    return {
        "dashboard": {
            **agents_dashboard.figures(),
            "activities": lifeloop_dashboard.latest_activities(),
            "posts_awaiting": lifeloop_dashboard.posts_awaiting_approval(),
            "refresh_seconds": settings.TRON_DASHBOARD_REFRESH_SECONDS,
        }
    }
