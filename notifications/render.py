"""Turn an outbox row into a `Message` for its channel, in the account's language, branded for the biller.

Templates live per kind and channel under notifications/templates/notifications/<kind>/:
    subject.txt, email.txt, email.html (extends notifications/email_base.html), sms.txt
Every string goes through Django's translation tags and is rendered inside translation.override(account language).
Every notice deep-links to the screen the payer needs: the bill's signed pay link.
"""

import logging
import re

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import get_language_bidi

# notifications may import billing's models, money, clock, errors and signals; and, for now, billing.bills.paylinks and
# billing.bills.documents (below), which render the bill's pay link and PDF a notice carries. Never billing's services:
# billing sends signals (billing/signals.py) and notifications/receivers.py reacts.
from billing.clock import biller_today
from billing.money import format_money
from billing.signals import notice_context_wanted

from .channels import Message, PermanentSendError
from .models import ChannelName, NoticeKind, Notification

logger = logging.getLogger(__name__)

SMS_MAX_CHARS = 160
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
# Kinds whose e-mail carries the bill itself as a PDF: the e-bill. Reminders carry the link only (lighter, and the
# payer has the PDF already).
PDF_KINDS = frozenset({NoticeKind.BILL_ISSUED})


def pay_url_for(bill) -> str:
    """The bill's signed pay link. if billing.bills.paylinks cannot be imported, fall back to the lookup page."""
    if bill is None:
        return settings.SITE_URL + "/pay/"
    try:
        from billing.bills.paylinks import bill_pay_url
    except ImportError:
        return settings.SITE_URL + "/pay/"
    return bill_pay_url(bill)


def _bill_of(notification: Notification):
    if notification.bill_id:
        return notification.bill
    payment = notification.payment or (notification.refund.payment if notification.refund_id else None)
    if payment is None:
        return None
    allocation = payment.allocations.select_related("bill__biller").order_by("pk").first()
    return allocation.bill if allocation else None


def _escalation(biller, step: int | None) -> tuple[int, bool]:
    """Which past-due step this is (1 = first) and whether it is the last one in the schedule."""
    after = sorted(s for s in (biller.reminder_schedule or []) if isinstance(s, int) and s > 0)
    if step is None or step not in after:
        return 1, False
    return after.index(step) + 1, after.index(step) == len(after) - 1


def _brand(biller) -> tuple[str, str]:
    colour = biller.brand_color if _COLOUR.match(biller.brand_color or "") else "#0b5cab"
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    # Perceived brightness: dark text on light brand colours, white on dark ones.
    text = "#000000" if (r * 299 + g * 587 + b * 114) / 1000 > 150 else "#ffffff"
    return colour, text


def notification_context(notification: Notification, *, now=None) -> dict:
    """Must run inside translation.override(language): amounts and dates follow the account's language."""
    account, biller = notification.account, notification.biller
    bill = _bill_of(notification)
    payment = notification.payment or (notification.refund.payment if notification.refund_id else None)
    escalation, final = _escalation(biller, notification.step)
    brand, brand_text = _brand(biller)
    context = {
        "notification": notification,
        "kind": notification.kind,
        "account": account,
        "biller": biller,
        "bill": bill,
        "payment": payment,
        "refund": notification.refund,
        "mandate": notification.mandate,
        "step": notification.step,
        "days": abs(notification.step or 0),
        "escalation": escalation,
        "final_notice": final,
        "pay_url": pay_url_for(bill),
        "brand_color": brand,
        "brand_text_color": brand_text,
        "language": translation.get_language(),
        "bidi": get_language_bidi(),
    }
    if bill is not None:
        # Days counted from the day the message goes out, in the biller's zone: a reminder delayed by quiet hours or an
        # outage says what is true when it is read, not what was true when it was planned.
        today = biller_today(biller, now=now)
        context["amount_due"] = format_money(bill.balance_due, bill.currency)
        context["bill_total"] = format_money(bill.total, bill.currency)
        context["days_left"] = max((bill.due_date - today).days, 0)
        context["days_late"] = max((today - bill.due_date).days, 0)
    if payment is not None:
        context["payment_amount"] = format_money(payment.total_charged, payment.currency)
    if notification.refund_id:
        context["refund_amount"] = format_money(notification.refund.amount, notification.refund.currency)
    # The inverted hook (billing/signals.py): autopay answers with its amount, card, decline reason, retry date.
    for _receiver, extra in notice_context_wanted.send(sender=Notification, notification=notification):
        context.update(extra or {})
    return context


def sms_compose(text: str, link: str, limit: int = SMS_MAX_CHARS) -> str:
    """One line of text plus the pay link, shortened so the whole fits in one SMS when it can. The link always stays."""
    text = " ".join(text.split())
    if link in text:
        text = " ".join(text.replace(link, "").split())
    room = limit - len(link) - 1
    if len(text) > room:
        text = text[: max(room - 1, 0)].rstrip() + "…" if room > 1 else ""
    return f"{text} {link}".strip()


def _pdf_attachment(bill) -> list[tuple[str, bytes, str]]:
    if bill is None or not settings.NOTIFICATIONS_ATTACH_BILL_PDF:
        return []
    try:
        from billing.bills.documents import bill_pdf_ensure

        stored = bill_pdf_ensure(bill=bill)
        with stored.open("rb") as handle:
            return [(f"{bill.number}.pdf", handle.read(), "application/pdf")]
    except Exception:  # the e-mail still carries the pay link; a PDF problem must not hold back the notice
        logger.exception("bill PDF for %s not attached", bill.pk)
        return []


def _mandate_pdf(mandate, context) -> list[tuple[str, bytes, str]]:
    """The payer's copy of the mandate they accepted, as a PDF (the same facts and text as the e-mail)."""
    try:
        from billing.bills.documents import pdf_from_html

        html = render_to_string("notifications/mandate_confirmed/mandate.html", context)
        return [(f"mandate-{mandate.display_reference}.pdf", pdf_from_html(html), "application/pdf")]
    except Exception:  # the e-mail carries the whole text anyway; a PDF problem must not hold it back
        logger.exception("mandate PDF for %s not attached", mandate.pk)
        return []


def notification_render(notification: Notification, *, to: str, now=None) -> Message:
    language = notification.account.language or settings.LANGUAGE_CODE
    base = f"notifications/{notification.kind}"
    with translation.override(language):
        context = notification_context(notification, now=now)
        if notification.channel == ChannelName.EMAIL:
            attachments = _pdf_attachment(context["bill"]) if notification.kind in PDF_KINDS else []
            if notification.kind == NoticeKind.MANDATE_CONFIRMED and notification.mandate_id:
                attachments = _mandate_pdf(notification.mandate, context)
            context["attach_pdf"] = bool(attachments)
            subject = " ".join(render_to_string(f"{base}/subject.txt", context).split())
            return Message(
                to=to,
                subject=subject,
                text=render_to_string(f"{base}/email.txt", context).strip() + "\n",
                html=render_to_string(f"{base}/email.html", context),
                sender_name=notification.biller.name,
                reply_to=notification.biller.support_email,
                attachments=attachments,
                reference=notification.dedupe_key,
            )
        if notification.channel == ChannelName.SMS:
            text = render_to_string(f"{base}/sms.txt", context)
            return Message(to=to, text=sms_compose(text, context["pay_url"]), reference=notification.dedupe_key)
    raise PermanentSendError(f"no rendering for channel {notification.channel!r}")
