"""WebSocket routes. The realtime consumers join this list in their own issue."""

websocket_urlpatterns: list = []
