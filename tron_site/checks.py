"""System checks of the secrets a public deployment needs (`manage.py check --deploy` runs them; the
release steps in README fail on them). docs/security.md says why each matters."""

from django.conf import settings
from django.core.checks import Tags, Warning, register

SECRETS = [
    (
        "TRON_CHAT_API_KEY",
        "tron.W001",
        "the chat API is open: anyone can claim any caller id, a phone number included, and with it that "
        "caller's conversation and notes",
    ),
    ("VAPI_SECRET", "tron.W002", "anyone can post VAPI webhooks: start and end calls, run persona tools"),
    ("TRON_API_TOKEN", "tron.W003", "the control API, /internal/* and /metrics are open to anyone"),
]


@register(Tags.security, deploy=True)
def secrets_are_set(app_configs, **kwargs):
    return [
        Warning(f"{name} is not set: {risk}.", hint=f"Set {name} (docs/security.md).", id=check_id)
        for name, check_id, risk in SECRETS
        if not getattr(settings, name)
    ]
