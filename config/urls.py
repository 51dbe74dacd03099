from django.contrib import admin
from django.urls import path

from arena import views

urlpatterns = [
    path("", views.arena_page, name="arena"),
    path("healthz", views.healthz, name="healthz"),
    path("leaderboard/", views.leaderboard_page, name="leaderboard"),
    path("api/leaderboard/", views.leaderboard_api, name="leaderboard-api"),
    path("api/models/status", views.models_status, name="models-status"),
    path("admin/", admin.site.urls),
]
