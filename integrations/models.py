"""Rows the edges need: the subdomains Caddy may get certificates for."""

from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

label_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    "A DNS label: lowercase letters, digits and inner hyphens, at most 63 characters.",
)


class Subdomain(models.Model):
    """A name under TRON_BASE_DOMAIN that this server answers for (and Caddy may issue TLS for)."""

    name = models.CharField(
        max_length=63,
        validators=[label_validator],
        help_text="The label only: `demo` for demo.<base domain>.",
    )
    target = models.CharField(
        max_length=255, blank=True, help_text="What it routes to, e.g. http://127.0.0.1:3001 or a project."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(Lower("name"), name="integrations_subdomain_name_ci_unique")]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.name = self.name.strip().lower()
        super().save(*args, **kwargs)
