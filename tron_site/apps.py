from django.contrib.admin.apps import AdminConfig


class TronAdminConfig(AdminConfig):
    """django.contrib.admin with the site of tron_site/admin.py (its home page is the dashboard), and the
    project's deployment checks (tron_site/checks.py)."""

    default_site = "tron_site.admin.TronAdminSite"

    def ready(self):
        super().ready()
        from . import checks  # noqa: F401 - registers the checks
