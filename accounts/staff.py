"""Staff sign-in: the second factor every staff login must pass, and how long a staff session lasts.

Staff sign in through allauth (rate-limited, TOTP when enrolled; see accounts/admin_site.py). Here: whether this
session passed a second factor, where a staff session goes when it has not, and enrolling a staff login's
authenticator from the command line (the first superuser has no admin to enrol in yet).
"""

from dataclasses import dataclass

from allauth.account.authentication import get_authentication_records
from allauth.account.models import EmailAddress
from allauth.mfa.adapter import get_adapter as get_mfa_adapter
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import decrypt

# allauth has no public API to enrol an authenticator outside a request; these are what its own activate view uses.
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.db import transaction
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from billing.errors import ApplicationError


def staff_second_factor_passed(request: HttpRequest) -> bool:
    """True when this session proved a second factor for its user: allauth records each sign-in step in the session
    (a TOTP or recovery code at sign-in, or a code typed to re-authenticate)."""
    records = get_authentication_records(request, request.user)
    return any(record.get("method") == "mfa" for record in records)


def staff_has_totp(*, user) -> bool:
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def staff_second_factor_redirect(request: HttpRequest, *, next_url: str) -> HttpResponseRedirect:
    """A staff session without a second factor: enrol TOTP if the login has none, else type a current code."""
    if not staff_has_totp(user=request.user):
        return HttpResponseRedirect(reverse("mfa_activate_totp"))
    return HttpResponseRedirect(f"{reverse('mfa_reauthenticate')}?{urlencode({REDIRECT_FIELD_NAME: next_url})}")


def staff_session_cap(*, request: HttpRequest, user) -> None:
    """A staff session holds refund powers, so it lasts STAFF_SESSION_COOKIE_AGE, not a payer's two weeks.

    Applied at sign-in and again on every admin request: allauth's "remember me" sets its own expiry after a
    password-only sign-in, and a login can become staff while signed in."""
    session = getattr(request, "session", None)
    if session is not None and user.is_staff and session.get_expiry_age() > settings.STAFF_SESSION_COOKIE_AGE:
        session.set_expiry(settings.STAFF_SESSION_COOKIE_AGE)


def staff_session_shorten(sender, request, user, **kwargs) -> None:
    """user_logged_in receiver (accounts/apps.py)."""
    if request is not None:
        staff_session_cap(request=request, user=user)


@dataclass(frozen=True)
class StaffTotpEnrolment:
    user: object
    secret: str
    otpauth_url: str
    recovery_codes: list[str]


@transaction.atomic
def staff_totp_enrol(*, user, reset: bool = False, secret: str | None = None) -> StaffTotpEnrolment:
    """Give a staff login a TOTP authenticator and fresh recovery codes. Refuses to replace one unless reset."""
    if not (user.is_staff and user.is_active):
        raise ApplicationError(_("%(email)s is not an active staff login.") % {"email": user.email})
    existing = Authenticator.objects.select_for_update().filter(
        user=user, type__in=[Authenticator.Type.TOTP, Authenticator.Type.RECOVERY_CODES]
    )
    if not reset and any(a.type == Authenticator.Type.TOTP for a in existing):
        raise ApplicationError(
            _("%(email)s already has an authenticator; use --reset to replace it.") % {"email": user.email}
        )
    existing.delete()
    # Whoever runs this has the server: that vouches for the address, so allauth's sign-in does not wait for a mail.
    if not EmailAddress.objects.filter(user=user, email__iexact=user.email).update(verified=True):
        primary = not EmailAddress.objects.filter(user=user, primary=True).exists()
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=primary)
    secret = secret or generate_totp_secret()
    TOTP.activate(user, secret)
    codes = RecoveryCodes.activate(user).generate_codes()
    return StaffTotpEnrolment(
        user=user, secret=secret, otpauth_url=get_mfa_adapter().build_totp_url(user, secret), recovery_codes=codes
    )


def staff_totp_secret(*, user) -> str | None:
    """The stored TOTP secret of a login, for the local demo's printed instructions only."""
    authenticator = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    return decrypt(authenticator.data["secret"]) if authenticator else None
