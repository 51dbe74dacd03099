from django.contrib import admin
from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from arena import views


class FaviconView(RedirectView):
    """/favicon.ico, which browsers ask for on pages that name no icon (the admin's): the arena's."""

    permanent = False  # the static file's address changes with its content in production

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("arena/favicon.svg")


urlpatterns = [
    path("", views.arena_page, name="arena"),
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("leaderboard/", views.leaderboard_page, name="leaderboard"),
    path("api/leaderboard/", views.leaderboard_api, name="leaderboard-api"),
    path("api/models/status", views.models_status, name="models-status"),
    path("admin/", admin.site.urls),
]
