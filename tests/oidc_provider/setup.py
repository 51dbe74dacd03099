"""Prepare the provider's database: its tables, people and the arena as a registered client.

python -m tests.oidc_provider.setup REDIRECT_URI CLIENT_ID CLIENT_SECRET (people as JSON on stdin:
[{"username", "password", "email"}])."""

import json
import sys

import django


def main() -> None:
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    redirect_uri, client_id, client_secret = sys.argv[1:4]
    call_command("migrate", verbosity=0)
    for person in json.load(sys.stdin):
        User.objects.create_user(person["username"], email=person["email"], password=person["password"])
    Application.objects.create(
        name="arena", client_id=client_id, client_secret=client_secret, redirect_uris=redirect_uri,
        client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        algorithm=Application.RS256_ALGORITHM, skip_authorization=True,
    )


if __name__ == "__main__":
    main()
