from oauth2_provider.oauth2_validators import OAuth2Validator


class EmailClaims(OAuth2Validator):
    """The e-mail claims Google, Okta, Keycloak and Azure AD send with the `email` scope."""

    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "email": "email", "email_verified": "email"}

    def get_additional_claims(self, request):
        return {"email": request.user.email, "email_verified": True, "name": request.user.get_full_name()}
