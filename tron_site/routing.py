"""WebSocket routes, gathered from each app's routing module as the apps grow them."""

websocket_urlpatterns: list = []
