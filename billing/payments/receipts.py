"""Receipts for online payments: the page's data, the PDF, the receipt notice (raised once), signed receipt links, and the
enrolment choices a guest payer makes around paying.

A receipt is shown only to the browser session that made the payment, or to whoever holds the signed link from the
receipt e-mail. Confirmation numbers are random, but they are never enough on their own: they are read out on the
phone and printed, so they are not secrets.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from billing.bills.documents import pdf_from_html
from billing.clock import biller_localtime
from billing.enrolment.guest import guest_enrollment_links_send
from billing.models import GuestEnrollmentRequest, Payment, PaymentAllocation
from billing.money import format_money

logger = logging.getLogger(__name__)

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
            {"number": a.bill.number, "due_date": a.bill.due_date, "amount": money(a.amount - a.amount_reversed)}
            for a in allocations
        ],
        "card": payment.payment_method_summary,
        "paid_at": biller_localtime(biller, when),
        "succeeded": payment.status == Payment.Status.SUCCEEDED,
    }


def receipt_pdf(payment: Payment) -> bytes:
    """The receipt as a PDF, rendered on demand (it is small and never changes after the payment, except for a
    refund, which it then shows)."""
    with translation.override(payment.account.language or settings.LANGUAGE_CODE):
        context = receipt_context(payment) | {
            "lang": translation.get_language(),
            "dir": "rtl" if translation.get_language_bidi() else "ltr",
        }
        html = render_to_string("billing/receipt_document.html", context)
    return pdf_from_html(html)


# --- The receipt notice ----------------------------------------------------------------------------------------------


def receipt_send(*, payment_id: int) -> bool:
    """Raise the payment_received notice once, through the notifications outbox, and have it sent now. Returns False
    when it was raised before, the payment did not succeed, or there is nobody to tell.

    The e-mail (notifications/templates/notifications/payment_received/) carries the receipt: amounts, fee, tip,
    total, bills paid, card and the signed receipt link; it goes to Payment.payer_email when the payer typed one.
    Sent once: the outbox allows one row per payment, kind and channel and sends each row once, so callers racing
    here (webhook, return, janitor) may all enqueue; receipt_sent_at ("notice raised at", set by one conditional
    UPDATE) picks the one that hands the rows to a worker. No lock is held while the rows are written: recording a
    success locks the account then the payment, and the rows' foreign keys touch both."""
    from notifications.models import NoticeKind
    from notifications.services import notice_enqueue, notices_dispatch

    payment = Payment.objects.select_related("account__biller").get(pk=payment_id)
    if payment.receipt_sent_at is not None or payment.status != Payment.Status.SUCCEEDED:
        return False
    rows = notice_enqueue(kind=NoticeKind.PAYMENT_RECEIVED, account=payment.account, payment=payment)
    if not rows:
        return False
    with transaction.atomic():
        now = timezone.now()
        marked = Payment.objects.filter(pk=payment_id, receipt_sent_at__isnull=True).update(
            receipt_sent_at=now, updated_at=now
        )
        if marked:
            # Claimed and handed to a worker once this commits; if the broker is down the beat sweeper sends them.
            notices_dispatch(notification_ids=[row.pk for row in rows])
    return bool(marked)


# --- Enrolment choices ------------------------------------------------------------------------------------------------


def guest_enrollment_record(
    *, payment: Payment, email: str, paperless: bool = False, autopay: bool = False
) -> GuestEnrollmentRequest | None:
    """Record what a guest asked for (paperless bills, autopay with the card they paid with). Adds to an earlier
    request for the same payment, never takes a choice back. Nothing is enrolled here: the payer confirms through
    the link the payer-accounts flow e-mails, which marks the request consumed."""
    if not (paperless or autopay):
        return None
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        request, created = GuestEnrollmentRequest.objects.get_or_create(
            payment=locked,
            defaults={"account_id": locked.account_id, "email": email, "paperless": paperless, "autopay": autopay},
        )
        if not created:
            request.paperless = request.paperless or paperless
            request.autopay = request.autopay or autopay
            request.email = email or request.email
            request.save(update_fields=["paperless", "autopay", "email", "updated_at"])
        # E-mail the confirmation links once this is committed (safe to repeat: only choices without a link yet).
        transaction.on_commit(lambda: guest_enrollment_links_send(enrollment_request_id=request.pk))
    return request


def payment_after_success(*, payment_id: int) -> None:
    """Run after a success is committed (whichever path recorded it): keep the payer's enrolment ticks from the
    payment page, then send the receipt. Errors are logged, never raised into the webhook or the payer's request."""
    try:
        payment = Payment.objects.select_related("account").get(pk=payment_id)
        email = payment.payer_email or payment.account.email
        if email and (payment.paperless_requested or payment.save_card_requested):
            guest_enrollment_record(
                payment=payment, email=email, paperless=payment.paperless_requested,
                autopay=payment.save_card_requested,
            )  # fmt: skip
        receipt_send(payment_id=payment_id)
    except Exception:
        logger.exception("payment %s: receipt or enrolment after success failed", payment_id)
