"""Autopay enrolment: the mandate's consent text, turning autopay on with a saved card, and the enrolment's status
moves (pause, resume, cancel, suspend), each checked against the transition map and written as an event."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..access import payer_access
from ..events import enrollment_event_record
from ..errors import ApplicationError
from ..events import status_move
from ..methods.services import (
    SAVED_CARD_NEEDS_LOOKUP,
    gateway_customer_lock,
    payment_method_may_pay,
    payment_method_owned,
)
from ..models import AutopayCharge, AutopayEnrollment, CustomerAccount, EnrollmentEvent, PaymentMethod
from .selectors import bank_mandate_may_debit


def autopay_consent_text(*, account: CustomerAccount) -> str:
    return _(
        "I authorise %(biller)s to charge the card I chose for each new bill on account %(number)s, on the day I "
        "chose, up to the maximum I set. A bill above my maximum is not charged: I get a reminder to pay it myself. "
        "I can pause or cancel autopay on this site at any time before a charge."
    ) % {"biller": account.biller.name, "number": account.account_number}


def autopay_enroll(
    *,
    account: CustomerAccount,
    user,
    payment_method: PaymentMethod,
    charge_rule: str,
    days_before: int | None = None,
    max_amount: int | None = None,
    consent_text: str,
    ip: str | None = None,
    replace: bool = False,
) -> AutopayEnrollment:
    """Turn autopay on for `account` with one of `user`'s saved cards. With `replace`, the account's current
    enrolment (active, paused or suspended) is cancelled in the same transaction, so changing the card, the day or
    the maximum leaves a fresh mandate on record."""
    if charge_rule not in AutopayEnrollment.ChargeRule.values:
        raise ApplicationError(_("Choose when to charge."))
    if charge_rule == AutopayEnrollment.ChargeRule.DAYS_BEFORE:
        if days_before is None or not 1 <= days_before <= AutopayEnrollment.MAX_DAYS_BEFORE:
            raise ApplicationError(
                _("Choose between 1 and %(max)d days before the due date.") % {"max": AutopayEnrollment.MAX_DAYS_BEFORE}
            )
    else:
        days_before = None
    if max_amount is not None and max_amount <= 0:
        raise ApplicationError(_("The maximum must be more than zero, or left empty."))
    if not payer_access().linked(user=user, account=account):
        raise ApplicationError(_("That account is not linked to your login."))
    if not payment_method_may_pay(user=user, account=account):
        raise ApplicationError(str(SAVED_CARD_NEEDS_LOOKUP))
    with transaction.atomic():
        account = CustomerAccount.objects.select_for_update(of=("self",)).select_related("biller").get(pk=account.pk)
        gateway_customer_lock(user)
        method = payment_method_owned(user, payment_method)
        if method.is_expired(timezone.localdate()):
            raise ApplicationError(_("That card has expired. Choose another card."))
        if method.is_bank_account and not bank_mandate_may_debit(method, account_id=account.pk):
            raise ApplicationError(
                _("That bank account's mandate is not for this account, or was revoked. Add the bank account again.")
            )
        current = AutopayEnrollment.objects.filter(
            account=account, status__in=AutopayEnrollment.CURRENT_STATUSES
        ).first()
        if current is not None:
            if not replace:
                raise ApplicationError(_("Autopay is already set up for this account."))
            autopay_status_move(current, AutopayEnrollment.Status.CANCELLED, user=user, ip=ip, message="replaced")
        now = timezone.now()
        try:
            with transaction.atomic():
                enrollment = AutopayEnrollment.objects.create(
                    account=account, user=user, payment_method=method, charge_rule=charge_rule,
                    days_before=days_before, max_amount=max_amount, currency=account.biller.currency,
                    status=AutopayEnrollment.Status.ACTIVE, consent_text=consent_text, consented_at=now,
                    ip=ip or None, payment_method_summary=method.summary, status_changed_at=now,
                )  # fmt: skip
        except IntegrityError:  # another login of the account enrolled between our read and our insert
            raise ApplicationError(_("Autopay is already set up for this account.")) from None
        enrollment_event_record(
            EnrollmentEvent.Kind.AUTOPAY_ENROLLED, user=user, account=account, autopay=enrollment,
            to_status=enrollment.status, message=method.summary, ip=ip,
        )  # fmt: skip
    return enrollment


def autopay_status_move(enrollment: AutopayEnrollment, to_status: str, *, user=None, ip=None, message="") -> None:
    status_move(
        enrollment, to_status,
        error=lambda: _("Autopay cannot go from “%(from)s” to “%(to)s”.")
        % {"from": enrollment.get_status_display(), "to": AutopayEnrollment.Status(to_status).label},
        update_fields=["status", "status_changed_at", "updated_at"],
        record=lambda from_status: enrollment_event_record(
            EnrollmentEvent.Kind.AUTOPAY_STATUS, user=user, account=enrollment.account, autopay=enrollment,
            from_status=from_status, to_status=to_status, message=message, ip=ip,
        ),
        changes={"status_changed_at": timezone.now()},
    )  # fmt: skip


def autopay_transition(
    *, enrollment: AutopayEnrollment, to_status: str, user=None, ip: str | None = None, message: str = ""
) -> AutopayEnrollment:
    """The one way an enrolment changes status; an illegal move raises ApplicationError and changes nothing."""
    with transaction.atomic():
        locked = (
            AutopayEnrollment.objects.select_for_update(of=("self",))
            .select_related("account", "payment_method")
            .get(pk=enrollment.pk)
        )
        if to_status == AutopayEnrollment.Status.ACTIVE and locked.payment_method.removed_at is not None:
            raise ApplicationError(_("The card for autopay was removed. Set up autopay again with another card."))
        autopay_status_move(locked, to_status, user=user, ip=ip, message=message)
    return locked


def autopay_pause(*, enrollment, user=None, ip=None) -> AutopayEnrollment:
    return autopay_transition(enrollment=enrollment, to_status=AutopayEnrollment.Status.PAUSED, user=user, ip=ip)


def autopay_resume(*, enrollment, user=None, ip=None) -> AutopayEnrollment:
    return autopay_transition(enrollment=enrollment, to_status=AutopayEnrollment.Status.ACTIVE, user=user, ip=ip)


def autopay_cancel(*, enrollment, user=None, ip=None) -> AutopayEnrollment:
    return autopay_transition(enrollment=enrollment, to_status=AutopayEnrollment.Status.CANCELLED, user=user, ip=ip)


def autopay_suspend(charge: AutopayCharge) -> None:
    enrollment = AutopayEnrollment.objects.select_for_update().get(pk=charge.enrollment_id)
    if enrollment.status == AutopayEnrollment.Status.SUSPENDED:
        return
    if enrollment.can_transition_to(AutopayEnrollment.Status.SUSPENDED):
        autopay_status_move(enrollment, AutopayEnrollment.Status.SUSPENDED,
                            message=f"the last retry of bill {charge.bill.number} failed")  # fmt: skip
