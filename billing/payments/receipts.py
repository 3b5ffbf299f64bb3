"""Receipts for online payments: the page's data, the PDF and signed receipt links. The receipt notice is the
notifications app's (notifications/receipts.py, on billing.signals.payment_succeeded); the guest's enrolment choices
are billing/enrolment/guest.py's.

A receipt is shown only to the browser session that made the payment, or to whoever holds the signed link from the
receipt e-mail. Confirmation numbers are random, but they are never enough on their own: they are read out on the
phone and printed, so they are not secrets.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.template.loader import render_to_string
from django.urls import reverse
from django.db.models import F, Sum
from django.utils import translation

from billing.bills.documents import page_size_of, pdf_from_html
from billing.clock import biller_localtime, biller_today, date_display, datetime_display
from billing.models import Bill, Payment, PaymentAllocation
from billing.money import format_money

RECEIPT_SALT = "billpay.receipt"
RECEIPT_LINK_MAX_AGE = 180 * 24 * 3600  # the link in the receipt e-mail works for about six months
SESSION_KEY = "billpay_receipts"  # confirmation numbers of the payments this browser session made
SESSION_LIMIT = 20


# --- Who may see a receipt -------------------------------------------------------------------------------------------


def receipt_token(payment: Payment) -> str:
    return signing.TimestampSigner(salt=RECEIPT_SALT).sign(payment.confirmation_number)


def receipt_token_valid(token: str, *, confirmation_number: str, max_age: int = RECEIPT_LINK_MAX_AGE) -> bool:
    try:
        signed = signing.TimestampSigner(salt=RECEIPT_SALT).unsign(token or "", max_age=max_age)
    except signing.BadSignature:  # includes SignatureExpired
        return False
    return signed == confirmation_number


def receipt_url(payment: Payment) -> str:
    """The absolute, signed address of the receipt, for the e-mail."""
    path = reverse("billing:pay_receipt", kwargs={"confirmation_number": payment.confirmation_number})
    return f"{settings.SITE_URL}{path}?key={receipt_token(payment)}"


def session_remember(request, payment: Payment) -> None:
    numbers = [n for n in request.session.get(SESSION_KEY, []) if n != payment.confirmation_number]
    request.session[SESSION_KEY] = ([payment.confirmation_number] + numbers)[:SESSION_LIMIT]


def session_may_see(request, confirmation_number: str) -> bool:
    return confirmation_number in request.session.get(SESSION_KEY, [])


# --- What a receipt shows -------------------------------------------------------------------------------------------


def receipt_context(payment: Payment) -> dict:
    """Everything a receipt shows, formatted, in the active language."""
    biller = payment.biller
    money = lambda minor: format_money(minor, payment.currency)  # noqa: E731
    allocations = PaymentAllocation.objects.filter(payment=payment).select_related("bill").order_by("bill__due_date")
    when = payment.received_at or payment.created_at
    rows = [(translation.gettext("Paid towards your bills"), money(payment.amount))]
    rows.append((translation.gettext("Convenience fee"), money(payment.fee_amount)))
    if payment.tip_amount:
        rows.append((translation.gettext("Tip"), money(payment.tip_amount)))
    return {
        "payment": payment,
        "biller": biller,
        "account": payment.account,
        "confirmation_number": payment.confirmation_number,
        "rows": rows,
        "total": money(payment.total_charged),
        "refunded": money(payment.amount_refunded) if payment.amount_refunded else "",
        "bills_paid": [
            {
                "number": a.bill.number,
                "due_date": a.bill.due_date,
                "due": date_display(a.bill.due_date, biller=biller),
                "amount": money(a.amount - a.amount_reversed),
            }
            for a in allocations
        ],
        "card": payment.payment_method_summary,
        "paid_at": biller_localtime(biller, when),
        "paid_at_display": datetime_display(when, biller=biller),  # on the biller's clock, the zone named
        "succeeded": payment.status == Payment.Status.SUCCEEDED,
        "still_owed": money(owed) if (owed := _still_owed(payment, paid_on=biller_localtime(biller, when))) else "",
        "still_owed_on_display": date_display(biller_today(biller), biller=biller),
    }


def _still_owed(payment: Payment, *, paid_on) -> int:
    """What is still owed today on the bills this payment could have paid (those issued by the day it was made):
    a partial payment's receipt says what is left, and a later bill does not make a full payment look partial."""
    if payment.status != Payment.Status.SUCCEEDED:
        return 0
    owed = Bill.objects.filter(
        account_id=payment.account_id, status__in=Bill.PAYABLE_STATUSES, issue_date__lte=paid_on.date()
    ).aggregate(owed=Sum(F("total") - F("amount_paid")))["owed"]
    return max(owed or 0, 0)


def receipt_pdf(payment: Payment, *, language: str | None = None) -> bytes:
    """The receipt as a PDF, rendered on demand (it is small and never changes after the payment, except for a
    refund, which it then shows), in `language` (the one the payer chose on the page; the account's by default), on
    the biller's paper size."""
    with translation.override(language or payment.account.language or settings.LANGUAGE_CODE):
        context = receipt_context(payment) | {
            "lang": translation.get_language(),
            "dir": "rtl" if translation.get_language_bidi() else "ltr",
            "page_size": page_size_of(payment.biller),
        }
        html = render_to_string("billing/receipt_document.html", context)
    return pdf_from_html(html)
