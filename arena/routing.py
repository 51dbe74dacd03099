from django.urls import path

from arena.consumers import ArenaConsumer

websocket_urlpatterns = [
    path("ws/arena/", ArenaConsumer.as_asgi()),
]
