"""Accounts (ARENA_ACCESS=accounts): signing up through an admin's invitation link."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from arena.errors import NotAllowed
from arena.models import Invitation


def invitation_usable(*, token: str) -> Invitation | None:
    invitation = Invitation.objects.filter(token=token).first()
    return invitation if invitation is not None and invitation.usable else None


@transaction.atomic
def account_create_from_invitation(*, token: str, username: str, password: str) -> User:
    """One use of the invitation makes one account; a used-up or expired link refuses."""
    # Claimed with a conditional update: two sign-ups racing for the last use can't both win.
    claimed = Invitation.objects.filter(
        token=token, uses__lt=F("max_uses"), expires_at__gt=timezone.now()
    ).update(uses=F("uses") + 1)
    if claimed != 1:
        raise NotAllowed("This invitation has expired or has been used up; ask for a new one.")
    return User.objects.create_user(username=username, password=password)
