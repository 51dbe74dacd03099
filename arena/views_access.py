"""Signing in and out, and signing up by invitation (ARENA_ACCESS accounts or sso)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from arena import services
from arena.clients import client_ip, sign_in_identity
from arena.errors import NotAllowed, RateLimited
from arena.services.limits import rate_limit

# Password guesses: this many attempts a name may have in a quarter of an hour (an address may
# make ARENA_ADDRESS_SHARERS times as many: an office signs in from one).
SIGN_IN_ATTEMPTS = 10
SIGN_IN_WINDOW_SECONDS = 900


class SignInView(LoginView):
    """Accounts: username and password. SSO: a button to the organisation's provider (admins still
    sign in with a password, at /admin/)."""

    template_name = "arena/sign_in.html"
    form_class = AuthenticationForm
    redirect_authenticated_user = True

    def dispatch(self, request, *args, **kwargs):
        if settings.ARENA_ACCESS == "open":
            return redirect("arena")
        if settings.ARENA_ACCESS == "sso" and request.method == "POST":
            return HttpResponse("Sign in with your organisation's account.", status=405)
        if request.method == "POST":
            ip = client_ip(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))
            try:
                rate_limit(
                    "sign-in", sign_in_identity(username=request.POST.get("username", ""), ip=ip),
                    limit=SIGN_IN_ATTEMPTS, address_limit=SIGN_IN_ATTEMPTS * settings.ARENA_ADDRESS_SHARERS,
                    window_seconds=SIGN_IN_WINDOW_SECONDS,
                    message="Too many sign-in attempts; wait a quarter of an hour, then try again.",
                )
            except RateLimited as exc:
                return self.render_to_response(self.get_context_data(limited=str(exc)), status=429)
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            sso=settings.ARENA_ACCESS == "sso", provider=settings.ARENA_SSO_PROVIDER_NAME,
            failed=self.request.GET.get("failed") == "1",
        )
        return context


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    if settings.ARENA_ACCESS != "accounts":
        raise Http404("Sign-up by invitation is for ARENA_ACCESS=accounts.")
    if services.invitation_usable(token=token) is None:
        return render(request, "arena/invitation.html", {"expired": True}, status=410)
    form: UserCreationForm = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.account_create_from_invitation(
                token=token, username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
            )
        except NotAllowed:
            return render(request, "arena/invitation.html", {"expired": True}, status=410)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("arena")
    return render(request, "arena/invitation.html", {"form": form})
