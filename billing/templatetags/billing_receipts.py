"""Receipt details for templates outside billing (the payment_received and refund_issued notices)."""

from django import template

register = template.Library()


@register.simple_tag
def payment_receipt(payment) -> dict:
    """What the receipt shows (amounts, fee, tip, total, bills paid, card, date) plus the signed receipt link, for a
    saved payment; {} for anything else, so a template rendered with stand-in data still renders."""
    from billing.models import Payment
    from billing.payments.receipts import receipt_context, receipt_url

    if not isinstance(payment, Payment) or payment.pk is None:
        return {}
    return receipt_context(payment) | {"receipt_url": receipt_url(payment)}
