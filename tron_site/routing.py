"""WebSocket routes, gathered from each app's routing module, and a refusal for every other path.

The edges' consumers (integrations.routing) take callers from anywhere, as the chat API does: they use
no cookies and authenticate by key (TRON_CHAT_API_KEY), so no Origin check applies to them (ElevenLabs'
SDKs connect from any page, or from servers that send no Origin). A consumer that trusts the admin's
session cookie would go behind AllowedHostsOriginValidator(AuthMiddlewareStack(...)).
"""

from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import re_path

from integrations.routing import websocket_urlpatterns as integrations_urlpatterns


class UnknownPath(AsyncWebsocketConsumer):
    """Any other path: the handshake is refused (closed before it is accepted: a 403), where Channels'
    router would raise and the server answer 500."""

    async def connect(self):
        await self.close()


websocket_urlpatterns = [*integrations_urlpatterns, re_path(r"", UnknownPath.as_asgi())]
