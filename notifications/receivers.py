"""What notifications does on billing's signals (billing.signals documents them). Connected in
NotificationsConfig.ready(), after billing's own receivers (INSTALLED_APPS order), so a guest's enrolment ticks are
recorded before the receipt goes out, as before. Billing never calls notifications by name.

Today's rule holds for every receiver here: notices are enqueued after commit, and an error is logged and swallowed;
a notice never undoes or blocks a payment, a refund or a charge."""

from __future__ import annotations

import logging

from django.db import transaction

from billing.models import BankMandate, Bill, CustomerAccount, Payment, PaymentPlan

from .disputes import dispute_notice_send
from .models import NoticeKind, Notification
from .receipts import payment_after_success, payments_after_success, receipt_batched, refund_notice_send
from .services import notice_enqueue, notices_dispatch

logger = logging.getLogger(__name__)


def receipt_on_payment_succeeded(sender, *, payment_id: int, channel: str | None = None, **kwargs) -> None:
    if receipt_batched(channel):
        return  # raised by the next notifications sweep, with the other receipts of its batch
    payment_after_success(payment_id=payment_id)  # logs its own errors


def receipts_on_payments_succeeded(sender, *, payment_ids: list[int], **kwargs) -> None:
    payments_after_success(payment_ids=payment_ids)  # logs its own errors


def refund_notice_on_refund_issued(sender, *, refund_id: int, **kwargs) -> None:
    try:
        refund_notice_send(refund_id=refund_id)
    except Exception:
        logger.exception("refund %s: refund notice not raised", refund_id)


def staff_mail_on_dispute_recorded(sender, *, dispute_id: int, **kwargs) -> None:
    try:
        dispute_notice_send(dispute_id=dispute_id)
    except Exception:  # the dispute is recorded whatever the mail server says
        logger.exception("dispute %s: staff e-mail not sent", dispute_id)


def autopay_notice_on_wanted(
    sender, *, kind: str, account_id: int, bill_id: int | None = None, payment_id: int | None = None,
    once_per_bill: bool = False, **kwargs,
) -> bool:
    """autopay_notice_wanted: enqueue the notice after the autopay change commits (the outbox's unique key makes it
    once per event). With once_per_bill, not when one of this kind exists for the bill (the planner counts what it
    raised). Returns True when the notice will be enqueued."""
    if once_per_bill and Notification.objects.filter(bill_id=bill_id, kind=kind).exists():
        return False

    def enqueue():
        account = CustomerAccount.objects.select_related("biller").get(pk=account_id)
        bill = Bill.objects.get(pk=bill_id) if bill_id else None
        payment = Payment.objects.get(pk=payment_id) if payment_id else None
        try:
            notice_enqueue(kind=kind, account=account, bill=bill, payment=payment)
        except Exception:  # a notice must never undo or block a charge that was recorded
            logger.exception("autopay notice %s for account %s not enqueued", kind, account_id)

    transaction.on_commit(enqueue)
    return True


def plan_notice_on_wanted(sender, *, kind: str, plan_id: int, **kwargs) -> None:
    """plan_notice_wanted: the plan notice after the plan change commits, once per plan, kind and channel."""

    def enqueue():
        plan = PaymentPlan.objects.select_related("account__biller").get(pk=plan_id)
        bill = Bill.objects.filter(plan_bills__plan=plan).order_by("due_date", "pk").first()
        try:
            notice_enqueue(kind=kind, account=plan.account, bill=bill, plan=plan)
        except Exception:  # a notice must never undo a plan change that was recorded
            logger.exception("plan notice %s for plan %s not enqueued", kind, plan_id)

    transaction.on_commit(enqueue)


def mandate_confirmation_on_accepted(sender, *, mandate_id: int, **kwargs) -> None:
    """mandate_accepted (after commit): the mandate confirmation e-mail to the account holder, with the mandate text
    and its reference, once per mandate (the outbox key), sent now."""
    try:
        mandate = BankMandate.objects.select_related("account__biller").get(pk=mandate_id)
        rows = notice_enqueue(kind=NoticeKind.MANDATE_CONFIRMED, account=mandate.account, mandate=mandate)
        notices_dispatch(notification_ids=[row.pk for row in rows])
    except Exception:
        logger.exception("mandate %s: confirmation e-mail not raised", mandate_id)


def payer_told_on_bank_debit_returned(sender, *, payment_id: int, **kwargs) -> None:
    """bank_debit_returned (in the recording transaction): tell the payer, after commit, that the debit came back and
    the bill is open again (payment_failed; the outbox key makes it once per payment, autopay's notice included)."""

    def enqueue():
        try:
            payment = Payment.objects.select_related("account__biller").get(pk=payment_id)
            rows = notice_enqueue(kind=NoticeKind.PAYMENT_FAILED, account=payment.account, payment=payment)
            notices_dispatch(notification_ids=[row.pk for row in rows])
        except Exception:  # a notice never undoes the recorded return
            logger.exception("payment %s: returned-debit notice not raised", payment_id)

    transaction.on_commit(enqueue)
