"""Staff sign-in for tests: every staff login needs a TOTP authenticator and a session that passed it.

`staff_login(client, user)` is force_login plus what allauth writes into the session after a correct TOTP code, so
admin tests can skip the real sign-in (tests/accounts/test_staff_sign_in.py walks the real one).
"""

import time

from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.test import RequestFactory


def totp_code(secret: str) -> str:
    """The authenticator app's current six digits for this secret."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def staff_login(client, user):
    authenticator = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if authenticator is None:
        from accounts.staff import staff_totp_enrol

        staff_totp_enrol(user=user)
        authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    client.force_login(user)
    session = client.session
    request = RequestFactory().get("/")
    request.session, request.user = session, user
    record_authentication(request, user, "mfa", id=authenticator.pk, type=authenticator.type)
    session.save()
    return client


def staff_user(django_user_model, email: str, group: str | None = None):
    """A staff login, in the role `group` ("Clerk", "Billing admin") when given; run `setup_roles` first."""
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(email=email, password="pw-Staff-123", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user
