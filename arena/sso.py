"""OpenID Connect sign-in (ARENA_ACCESS=sso) through mozilla-django-oidc: Google Workspace, Okta,
Keycloak, Azure AD or any provider with the standard endpoints. Only verified addresses of the
allowed e-mail domains (ARENA_SSO_EMAIL_DOMAINS, "*" for any) get in; the account's username is
a digest of the address, so pages never show the address itself."""

from __future__ import annotations

import logging

from django.conf import settings
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

log = logging.getLogger(__name__)


def email_domain_allowed(email: str, allowed: list[str]) -> bool:
    domain = email.rpartition("@")[2].lower()
    return bool(domain) and ("*" in allowed or domain in allowed)


class DomainOIDCBackend(OIDCAuthenticationBackend):
    def verify_claims(self, claims: dict) -> bool:
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            log.info("OIDC sign-in refused: the provider sent no e-mail address")
            return False
        # Providers that say whether they checked the address (Google, Keycloak) must have.
        if claims.get("email_verified") is False:
            log.info("OIDC sign-in refused: the address is not verified")
            return False
        if not email_domain_allowed(email, settings.ARENA_SSO_EMAIL_DOMAINS):
            # The domain only: addresses stay out of the logs.
            log.info("OIDC sign-in refused for the domain %s", email.rpartition("@")[2].lower())
            return False
        return True
