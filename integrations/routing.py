"""WebSocket routes of the edges: ElevenLabs' Conversational AI protocol, where Tron is the agent.

`/v1/convai/conversation` is the path ElevenLabs' own client SDKs connect to when their base URL points
here; `/ws/elevenlabs` is the seed contract's."""

from django.urls import re_path

from .elevenlabs_ws import ConversationConsumer

websocket_urlpatterns = [
    re_path(r"^ws/elevenlabs/?$", ConversationConsumer.as_asgi()),
    re_path(r"^v1/convai/conversation/?$", ConversationConsumer.as_asgi()),
]
