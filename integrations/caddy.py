"""Caddy's on-demand TLS asks here before issuing a certificate: yes (200) or no (404), nothing more."""

from django.conf import settings
from django.http import HttpResponse
from ninja import Router
from ninja.errors import HttpError

from .models import Subdomain

router = Router(tags=["internal"])


def is_served_domain(domain: str) -> bool:
    """Whether `domain` is the base domain or an enabled, registered direct subdomain of it (one query)."""
    domain = domain.strip().lower().rstrip(".")
    base = settings.TRON_BASE_DOMAIN
    if not domain or not base:
        return False
    if domain == base:
        return True
    label, dot, rest = domain.partition(".")
    if not dot or rest != base:
        return False
    return Subdomain.objects.filter(name=label, enabled=True).exists()


@router.get("/caddy-ask", include_in_schema=False)
def caddy_ask(request, domain: str = ""):
    if not domain.strip():
        raise HttpError(400, "Missing 'domain' query parameter")
    if not is_served_domain(domain):
        raise HttpError(404, "Not found")
    return HttpResponse(status=200)
