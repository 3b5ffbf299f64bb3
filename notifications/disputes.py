"""The staff e-mail about a dispute (chargeback), raised by notifications.receivers on billing's dispute_recorded."""

from __future__ import annotations

from django.core.mail import mail_admins, send_mail
from django.utils.translation import gettext as _

from billing.models import Dispute
from billing.money import format_money


def dispute_notice_send(*, dispute_id: int) -> None:
    """E-mail the biller's staff (its support address; the site admins when it has none)."""
    dispute = Dispute.objects.select_related("payment__account__biller").get(pk=dispute_id)
    payment = dispute.payment
    subject = _("Dispute on payment %(number)s: %(status)s") % {
        "number": payment.confirmation_number, "status": dispute.get_status_display(),
    }  # fmt: skip
    body = _(
        "The payer's bank disputes payment %(number)s (account %(account)s).\n"
        "Disputed: %(amount)s. Reason: %(reason)s. Status: %(status)s. Funds: %(funds)s.\n"
        "Evidence due by: %(due)s.\nSee the payment's history in the Billpay admin."
    ) % {
        "number": payment.confirmation_number, "account": payment.account.account_number,
        "amount": format_money(dispute.amount, dispute.currency), "reason": dispute.reason or "—",
        "status": dispute.get_status_display(), "funds": dispute.get_funds_display(),
        "due": dispute.evidence_due_by.isoformat() if dispute.evidence_due_by else "—",
    }  # fmt: skip
    to = payment.account.biller.support_email
    if to:
        send_mail(subject, body, None, [to])
    else:
        mail_admins(subject, body)
