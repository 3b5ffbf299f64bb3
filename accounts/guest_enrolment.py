"""Completing a guest's autopay link: the login and the account link are ours; the link, the one-time code and the
card are billing's (billing/enrolment/guest.py, billing/methods/services.py), called through their public services.
"""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext as _

from billing.enrolment.guest import guest_autopay_card_find, guest_link_code_check, guest_link_get, guest_link_use
from billing.errors import ApplicationError
from billing.methods.services import payment_method_attach
from billing.models import GuestEnrollmentLink, PaymentMethod

from .models import AccountLink
from .services import account_link_grant


def guest_link_holder_ok(*, link: GuestEnrollmentLink, user) -> bool:
    """Whether this login may take what the link offers: it holds the address the link went to, verified."""
    return EmailAddress.objects.filter(user=user, email__iexact=link.request.email, verified=True).exists()


def guest_autopay_complete(
    *, token: str, code: str, user=None, password: str | None = None, ip: str | None
) -> tuple[object, PaymentMethod, bool]:
    """The guest followed the autopay link and proved the mailbox with the code it was sent: save the card they
    paid with (read from the payment's intent at the gateway, attached to the login's customer) and link the account.

    `user` is the signed-in login, which must hold the link's address verified; None makes a login for that address
    (verified: the code proved the mailbox just now). Returns (login, card, login_created). The link alone, or the
    link and a login of another address, gets nothing. Autopay itself is turned on by the payer on the next page,
    where they see and accept the mandate."""
    link = guest_link_get(token=token, purpose=GuestEnrollmentLink.Purpose.AUTOPAY)
    request = link.request
    if user is not None and not guest_link_holder_ok(link=link, user=user):
        raise ApplicationError(_("This link was sent to another e-mail address. Nothing was saved to your login."))
    if user is None and get_user_model().objects.filter(email__iexact=request.email).exists():
        raise ApplicationError(_("There is already a login with this e-mail address. Please sign in."))
    gateway_payment_method_id = guest_autopay_card_find(link=link)
    guest_link_code_check(link=link, code=code)
    created = user is None
    if created:
        user = _guest_login_create(email=request.email, password=password)
    method = payment_method_attach(
        user=user, gateway_payment_method_id=gateway_payment_method_id, ip=ip, saved_from_account=request.account
    )
    with transaction.atomic():
        guest_link_use(link)
        account_link_grant(user=user, account=request.account, via=AccountLink.Via.GUEST_CODE)
    return user, method, created


def _guest_login_create(*, email: str, password: str | None):
    """A login for a guest who just proved the mailbox with a code: so the address is verified. Without a password
    the payer signs in with a code sent by e-mail. Only guest_autopay_complete calls this, after the code."""
    User = get_user_model()
    email = email.strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ApplicationError(_("There is already a login with this e-mail address. Please sign in."))
    with transaction.atomic():
        user = User.objects.create_user(email=email, password=password or None)
        if not password:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user
