from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import LogoutView
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from arena import views, views_access


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
    path("api/leaderboard/mine/", views.leaderboard_mine_api, name="leaderboard-mine-api"),
    path("accounts/sign-in/", views_access.SignInView.as_view(), name="sign-in"),
    path("accounts/sign-out/", LogoutView.as_view(), name="sign-out"),
    path("accounts/invite/<str:token>/", views_access.invitation_accept, name="invitation"),
    path("admin/", admin.site.urls),
]

if settings.ARENA_ACCESS == "sso":
    urlpatterns.append(path("oidc/", include("mozilla_django_oidc.urls")))
