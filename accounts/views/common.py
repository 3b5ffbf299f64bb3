"""What the payer view modules share."""

import time
from functools import wraps

from allauth.account.authentication import get_authentication_records
from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.http import Http404

from .. import selectors


def linked_or_404(request, account_id: int):
    """The login's link to the account. An account that is not linked to the login answers 404, exactly like one that
    does not exist, so nobody can probe for other people's accounts by number."""
    link = selectors.user_account_link(user=request.user, account_id=account_id)
    if link is None:
        raise Http404
    return link


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


# How a session can have signed in (allauth's authentication records): a password, an e-mailed code (allauth's login
# by code, or our guest autopay code), a password reset, a second factor.
SIGN_IN_METHODS = frozenset({"password", "code", "password_reset", "mfa", "socialaccount"})


def signed_in_recently(request) -> bool:
    """Whether this session signed in (or confirmed it is the payer) within ACCOUNT_REAUTHENTICATION_TIMEOUT."""
    records = get_authentication_records(request, request.user)
    times = [r.get("at") or 0 for r in records if r.get("method") in SIGN_IN_METHODS or r.get("reauthenticated")]
    return bool(times) and time.time() - max(times) < settings.ACCOUNT_REAUTHENTICATION_TIMEOUT


def recent_sign_in_required(view=None, *, allow_get: bool = False):
    """allauth's reauthentication_required, except that a fresh sign-in counts as recent: allauth 65 counts only
    its own "confirm it's you" step, so a payer who signed in 9 seconds ago was asked for the password again. A
    session restored from its cookie, or older than the timeout, is still asked (and allauth replays the request)."""

    def decorator(view_func):
        guarded = reauthentication_required(view_func, allow_get=allow_get)

        @wraps(view_func)
        def wrapper(request, *args, **kwargs):
            if request.user.is_authenticated and signed_in_recently(request):
                return view_func(request, *args, **kwargs)
            return guarded(request, *args, **kwargs)

        return wrapper

    return decorator(view) if view is not None else decorator
