"""LLM providers behind one interface (base.LLMProvider): `openai` for any OpenAI-compatible endpoint,
`local` for the embedded model. TRON_LLM chooses (auto: openai when a key or base URL is set)."""

from django.conf import settings

from .base import LLMProvider

_providers: dict[tuple, LLMProvider] = {}


def get_provider() -> LLMProvider:
    """The configured provider, one instance per configuration (so clients and models are reused)."""
    key = (
        settings.TRON_LLM,
        settings.OPENAI_BASE_URL,
        settings.OPENAI_API_KEY,
        settings.TRON_LLM_TIMEOUT,
        settings.TRON_LLM_MAX_RETRIES,
    )
    provider = _providers.get(key)
    if provider is None:
        if settings.TRON_LLM == "local":
            from .local import LocalProvider

            provider = LocalProvider()
        else:
            from .openai_compat import OpenAIProvider

            provider = OpenAIProvider()
        _providers[key] = provider
    return provider
