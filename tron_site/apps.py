from django.contrib.admin.apps import AdminConfig


class TronAdminConfig(AdminConfig):
    """django.contrib.admin with the site of tron_site/admin.py (its home page is the dashboard)."""

    default_site = "tron_site.admin.TronAdminSite"
