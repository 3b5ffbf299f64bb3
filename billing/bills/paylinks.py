"""Signed pay links: the address in an e-bill that opens the payment screen for that bill's account, no login needed.

The token is the bill's primary key and its biller's id, signed with SECRET_KEY (salt "billpay.paylink"). It carries
no timestamp on purpose: the same bill always gets the same link, so the bill PDF that prints it does not change on
every render. Expiry is decided from the bill itself instead, `biller.pay_link_valid_days` after its due date, in the
biller's time zone, so moving a due date moves the expiry too.

A valid link grants access to one customer account's payment screen (see billing/payments/lookup.py for the session grant),
never to a login or to any other account.
"""

import datetime as dt

from django.conf import settings
from django.core import signing
from django.urls import reverse

from ..clock import biller_today
from ..models import Bill

SALT = "billpay.paylink"


class PayLinkError(Exception):
    """Base for a pay link that cannot be used. Subclasses say why, so the page can explain it."""


class PayLinkTampered(PayLinkError):
    """The signature is wrong, the token is malformed, or it names a bill that does not exist (any more)."""


class PayLinkExpired(PayLinkError):
    def __init__(self, expired_on: dt.date):
        super().__init__(f"expired after {expired_on.isoformat()}")
        self.expired_on = expired_on


class PayLinkBillVoid(PayLinkError):
    """The bill was cancelled by the biller, so there is nothing to pay through this link."""


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT)


def pay_token(bill: Bill) -> str:
    # JSONSerializer writes compact JSON ("[12,3]"), so the token stays short enough for a printed bill.
    return _signer().sign_object([bill.pk, bill.biller_id])


def bill_pay_path(bill: Bill) -> str:
    """The pay link without the site's address, for a page on this site (the e-bill's Pay button)."""
    return reverse("billing:pay_link", kwargs={"token": pay_token(bill)})


def bill_pay_url(bill: Bill) -> str:
    """The absolute pay link for a bill, for e-mails and PDFs. The same on every call for the same bill."""
    return settings.SITE_URL + bill_pay_path(bill)


def bill_from_pay_token(token: str, *, today: dt.date | None = None) -> Bill:
    """The bill a pay link names, if the link may still be used.

    Raises PayLinkTampered, PayLinkBillVoid or PayLinkExpired. `today` defaults to the biller's local date; tests pass
    one to move time.
    """
    try:
        payload = _signer().unsign_object(token)
        bill_pk, biller_id = payload
        bill_pk, biller_id = int(bill_pk), int(biller_id)
    except (signing.BadSignature, ValueError, TypeError):
        raise PayLinkTampered() from None
    bill = Bill.objects.select_related("biller", "account").filter(pk=bill_pk, biller_id=biller_id).first()
    if bill is None:
        raise PayLinkTampered()
    if bill.status == Bill.Status.VOID or bill.status == Bill.Status.DRAFT:
        # A draft was never sent, so a link to it can only have leaked; treat it like a cancelled bill.
        raise PayLinkBillVoid()
    expires_on = bill.pay_link_expires_on()
    if (today or biller_today(bill.biller)) > expires_on:
        raise PayLinkExpired(expires_on)
    return bill
