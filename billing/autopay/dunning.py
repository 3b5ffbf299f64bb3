"""Autopay dunning: after a decline, the backup card, a retry on the biller's schedule, or the stop (and the
suspension of the enrolment after the last retry), each with its notice."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone

from billing.clock import biller_today
from billing.payments.gateway import DeclineClass, bank_decline_classify, decline_classify

from ..models import AutopayCharge, AutopayChargeTry, Bill
from .charges import charge_status_move
from .enrolment import autopay_suspend
from .notices import autopay_notify
from .selectors import autopay_retry_days, charge_cards

logger = logging.getLogger(__name__)

Status = AutopayCharge.Status
Role = AutopayCharge.MethodRole
Reason = AutopayCharge.Reason


def charge_declined(charge: AutopayCharge, bill: Bill, attempt: AutopayChargeTry, *, code, decline_code) -> str:
    info = decline_classify(code, decline_code)
    attempt.outcome = (
        AutopayChargeTry.Outcome.AUTHENTICATION
        if info.decline_class == DeclineClass.AUTHENTICATION
        else AutopayChargeTry.Outcome.DECLINED
    )
    raw = (decline_code or code or info.code)[:64]  # what the issuer said, even when the table does not know it
    attempt.decline_code, attempt.decline_class = raw, info.decline_class
    attempt.save(update_fields=["outcome", "decline_code", "decline_class"])
    charge.last_method_role = attempt.method_role
    charge.last_decline_code, charge.last_decline_class = raw, info.decline_class
    charge.first_failed_at = charge.first_failed_at or timezone.now()
    if info.decline_class != DeclineClass.SOFT:  # hard or authentication: never this card off-session again
        if attempt.method_role == Role.DEFAULT:
            charge.default_out = True
        else:
            charge.backup_out = True
    charge.save()
    logger.info("autopay charge %s: %s card declined (%s, %s)", charge.pk, attempt.method_role, info.code,
                info.decline_class)  # fmt: skip
    today = biller_today(charge.account.biller)
    if attempt.method_role == Role.DEFAULT and not charge.backup_tried:
        if charge_cards(charge, today)[Role.BACKUP] is not None:
            return "continue"  # the backup card, once, at once
        charge.backup_tried = True
        charge.save(update_fields=["backup_tried", "updated_at"])
    return charge_conclude(charge, bill, attempt)


def charge_conclude(charge: AutopayCharge, bill: Bill, last: AutopayChargeTry | None) -> str:
    """An attempt ended without a success: retry later, or stop. Under the locks, in the recording transaction."""
    now = timezone.now()
    today = biller_today(charge.account.biller, now=now)
    cards = charge_cards(charge, today)
    still_in = [r for r in (Role.DEFAULT, Role.BACKUP) if cards[r] is not None and not getattr(charge, f"{r}_out")]
    schedule = autopay_retry_days(charge.account.biller)
    # The notice names the last charge that failed (an earlier attempt's when this one found no card to charge).
    payment_id = last.payment_id if last else charge.tries.order_by("-pk").values_list("payment_id", flat=True).first()
    if not still_in:
        reason = Reason.AUTHENTICATION if charge.last_decline_class == DeclineClass.AUTHENTICATION else (
            Reason.HARD_DECLINE if last else Reason.NO_CARD)  # fmt: skip
        charge_status_move(charge, Status.FAILED_FINAL, reason=reason, next_attempt_at=None,
                           message=f"stopped: {charge.last_decline_code or reason}")  # fmt: skip
        autopay_notify("payment_failed", account_id=charge.account_id, bill_id=bill.pk, payment_id=payment_id)
        return charge.status
    if charge.attempt_number > len(schedule):
        charge_status_move(charge, Status.FAILED_FINAL, reason=Reason.RETRIES_EXHAUSTED, next_attempt_at=None,
                           message=f"last retry failed: {charge.last_decline_code}")  # fmt: skip
        if charge.enrollment_id:  # an instalment's plan is not suspended: it breaks after its grace days if unpaid
            autopay_suspend(charge)
        autopay_notify("autopay_suspended", account_id=charge.account_id, bill_id=bill.pk)
        return charge.status
    # Catch-up: retries keep their count, but two charges of one bill are never closer than AUTOPAY_MIN_RETRY_GAP_HOURS.
    planned = (charge.first_failed_at or now) + dt.timedelta(days=schedule[charge.attempt_number - 1])
    gap = dt.timedelta(hours=settings.AUTOPAY_MIN_RETRY_GAP_HOURS)
    charge_status_move(charge, Status.RETRY_SCHEDULED, next_attempt_at=max(planned, now + gap),
                       message=f"retry {charge.attempt_number} of {len(schedule)} scheduled after {charge.last_decline_code}")  # fmt: skip
    autopay_notify("payment_failed", account_id=charge.account_id, bill_id=bill.pk, payment_id=payment_id)
    return charge.status


def autopay_debit_returned(*, payment_id: int, code: str) -> str | None:
    """A bank debit autopay made (and counted as paid while it processed) came back: the core has already taken its
    money off the bill. Reopen the charge row by the decline class: an account closed or a mandate revoked (hard)
    takes that bank account out, so the next attempt uses the backup method or stops; insufficient funds (soft)
    retries on the biller's schedule. The payer's notice says which. Runs on bank_debit_returned, in the recording
    transaction (the account, payment and bill locks are held); None when the payment was not autopay's."""
    attempt = AutopayChargeTry.objects.filter(payment_id=payment_id).first()
    if attempt is None:
        return None
    charge = (
        AutopayCharge.objects.select_for_update(of=("self",))
        .select_related("enrollment", "account__biller")
        .get(pk=attempt.charge_id)
    )
    if charge.status != Status.SUCCEEDED or charge.payment_id != payment_id:
        return charge.status
    bill = Bill.objects.select_for_update().get(pk=charge.bill_id)
    info = bank_decline_classify(code or None)
    attempt.outcome = AutopayChargeTry.Outcome.DECLINED
    attempt.decline_code, attempt.decline_class = (code or info.code)[:64], info.decline_class
    attempt.save(update_fields=["outcome", "decline_code", "decline_class"])
    charge.last_method_role = attempt.method_role
    charge.last_decline_code, charge.last_decline_class = attempt.decline_code, info.decline_class
    charge.first_failed_at = charge.first_failed_at or timezone.now()
    charge.payment = None
    if info.is_hard:
        if attempt.method_role == Role.DEFAULT:
            charge.default_out = True
        else:
            charge.backup_out = True
    charge.save()
    logger.info("autopay charge %s: bank debit %s returned (%s, %s)", charge.pk, payment_id, info.code,
                info.decline_class)  # fmt: skip
    return charge_conclude(charge, bill, attempt)
