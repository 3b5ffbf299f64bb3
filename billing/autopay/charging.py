"""Autopay charging: one run of a claimed row, charging off-session, exactly once.

State machine of an `AutopayCharge` (the map is `AutopayCharge.TRANSITIONS`; `charges.charge_status_move` is the only
writer):

    scheduled ──sweeper──> charging ──> succeeded
        │                     │ ├────> retry_scheduled ──sweeper──> charging …
        │                     │ ├────> failed_final   (hard or authentication decline on every card; last retry)
        └──> cancelled <──────┘ └────> cancelled      (bill paid another way, autopay off, above the maximum)

One charge run (`autopay_charge`, the body of `autopay_charge_task`) makes at most two off-session charges: the autopay
card, and when that declines (any decline) the payer's backup card, once per bill. What happens next is decided by the
decline class (`billing.payments.gateway.decline_classify`) in `billing.autopay.dunning`: a hard or authentication decline takes
that card out for good; a soft one leaves it in. With a card still in, the next attempt waits `biller.retry_schedule`
days after the first failure; with none, or after the last retry, the row stops (failed_final) and the payer is told,
with the pay link. After the last retry the enrolment is suspended (through its transition map) and past-due reminders
take over.

Exactly once. A charge is a Payment (channel autopay) whose idempotency key `autopay-<row>-<attempt>-<card>` sits in a
unique column, with an `AutopayChargeTry` that is unique per (row, attempt, card). The work is split so that a worker
killed at any point can be resumed from the database alone:
  1. under the account, row and bill locks: compute what is owed *now*, write the Payment and the try (commit);
  2. create the PaymentIntent, unconfirmed (no money moves), and store its id (commit);
  3. under the account, row and bill locks again: re-check the bill is still owed, confirm the intent, and record
     the result through the payment services' one apply path (commit).
A redelivered or reclaimed run finds the pending try and asks the gateway about its intent instead of creating one;
an intent that was never stored (a crash inside step 2) was never confirmed, so it can never be charged. While step 3
holds the bill lock, an offline payment (which locks the bills) and a guest payment (which locks the account) wait, so
nothing is charged after a bill is paid another way; and the payment services apply at most what is owed now.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from billing.clock import biller_today
from billing.payments import gateway as gateway_api
from billing.payments.attempts import payment_confirm_attempt_open, payment_confirm_off_session
from billing.payments.gateway import GatewayError, IntentResult, IntentStatus, PaymentDeclined
from billing.plans.selectors import instalment_charge_amount

from ..models import (
    AutopayCharge,
    AutopayChargeTry,
    AutopayEnrollment,
    BankMandate,
    Bill,
    BillingEvent,
    CustomerAccount,
    Payment,
    PaymentAttempt,
    PaymentMethod,
)
from .charges import charge_status_move
from .dunning import charge_conclude, charge_declined
from .notices import debit_notice_given
from .selectors import charge_cards

logger = logging.getLogger(__name__)

Status = AutopayCharge.Status
Role = AutopayCharge.MethodRole
Reason = AutopayCharge.Reason


def autopay_charge(*, charge_id: int) -> str:
    """Run a claimed row: charge the autopay card, and the backup card once if it declines. Returns the row's status
    afterwards, or "noop" when another delivery of the task has this claim (or the row is not charging)."""
    started = AutopayCharge.objects.filter(pk=charge_id, status=Status.CHARGING, started_at__isnull=True).update(
        started_at=timezone.now()
    )
    if not started:
        return "noop"
    for _ in range(4):  # at most two tries (autopay card, backup card) and two passes that skip a missing card
        outcome = _charge_step(charge_id)
        if outcome != "continue":
            return outcome
    return AutopayCharge.objects.get(pk=charge_id).status


def _lock(charge_id: int) -> tuple[AutopayCharge, Bill]:
    """Lock order, as in billing/payments/: the account, then this row, then the bill."""
    account_id = AutopayCharge.objects.values_list("account_id", flat=True).get(pk=charge_id)
    CustomerAccount.objects.select_for_update().filter(pk=account_id).first()
    charge = (
        AutopayCharge.objects.select_for_update(of=("self",))
        .select_related("enrollment", "instalment__plan", "account__biller", "bill")
        .get(pk=charge_id)
    )
    bill = Bill.objects.select_for_update().get(pk=charge.bill_id)
    return charge, bill


def _charge_step(charge_id: int) -> str:
    """One pass: start (or resume) the next try of the current attempt and run it. "continue" asks for another pass
    (the backup card after a decline, or the next card when one is missing)."""
    with transaction.atomic():
        charge, bill = _lock(charge_id)
        if charge.status != Status.CHARGING:
            return charge.status
        current = list(
            charge.tries.filter(attempt_number=charge.attempt_number).select_related("payment").order_by("pk")
        )
        pending = next((t for t in current if t.outcome == AutopayChargeTry.Outcome.PENDING), None)
        if pending is None:
            role = _next_role(charge, current)
            if role is None:
                return charge_conclude(charge, bill, current[-1] if current else None)
            stop = _stop_reason(charge, bill)
            if stop:
                charge_status_move(charge, Status.CANCELLED, reason=stop, next_attempt_at=None, message=stop)
                return charge.status
            today = biller_today(charge.account.biller)
            card = charge_cards(charge, today)[role]
            if card is not None and card.is_bank_account and not debit_notice_given(charge):
                card = None  # never debit a bank account its pre-notification did not announce
            if card is None:
                # Removed or expired since enrolment: that card is out, as after a hard decline.
                if role == Role.DEFAULT:
                    charge.default_out = True
                else:
                    charge.backup_out = charge.backup_tried = True
                charge.save(update_fields=["default_out", "backup_out", "backup_tried", "updated_at"])
                return "continue"
            pending = _try_start(charge=charge, bill=bill, role=role, card=card)
        resuming = pending.payment.attempts.exists()
    return _try_run(charge_id, pending.pk, resuming=resuming)


def _next_role(charge: AutopayCharge, current: list[AutopayChargeTry]) -> str | None:
    """The card for the next try of the current attempt, or None when the attempt is over."""
    if not current:  # a fresh attempt: the autopay card while it is in, else the backup card
        if not charge.default_out:
            return Role.DEFAULT
        return Role.BACKUP if not charge.backup_out else None
    last = current[-1]
    if last.outcome in (AutopayChargeTry.Outcome.SUCCEEDED, AutopayChargeTry.Outcome.CANCELLED):
        return None
    if last.method_role == Role.DEFAULT and not charge.backup_tried and not charge.backup_out:
        return Role.BACKUP  # the backup card, once per bill, right after the autopay card declined
    return None


def _owed(charge: AutopayCharge, bill: Bill) -> int:
    """What this row charges now: the bill's balance, or what the plan's instalment still owes."""
    if charge.instalment_id:
        return instalment_charge_amount(charge.instalment)[0]
    return bill.balance_due


def _stop_reason(charge: AutopayCharge, bill: Bill) -> str:
    """Why a try must not start, checked under the locks with the bill as it is now."""
    if charge.instalment_id:
        charge.instalment.refresh_from_db()
        charge.instalment.plan.refresh_from_db()
        return instalment_charge_amount(charge.instalment)[1]
    if bill.status not in Bill.PAYABLE_STATUSES:
        return Reason.PAID_ELSEWHERE if bill.status == Bill.Status.PAID else Reason.NOT_PAYABLE
    if bill.balance_due <= 0:
        return Reason.PAID_ELSEWHERE
    enrollment = AutopayEnrollment.objects.get(pk=charge.enrollment_id)
    if enrollment.status != AutopayEnrollment.Status.ACTIVE:
        return Reason.AUTOPAY_OFF
    if enrollment.max_amount is not None and bill.balance_due > enrollment.max_amount:
        return Reason.ABOVE_MAX
    return ""


def _try_start(*, charge: AutopayCharge, bill: Bill, role: str, card: PaymentMethod) -> AutopayChargeTry:
    """Step 1: the Payment and the try, for what the bill owes now. Both carry the row's idempotency key."""
    from billing.events import event_record
    from billing.payments.core import confirmation_number_new

    key = f"autopay-{charge.pk}-{charge.attempt_number}-{role}"
    payment = Payment.objects.create(
        biller_id=bill.biller_id, account_id=bill.account_id, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.AUTOPAY, method=card.kind if card.is_bank_account else Payment.Method.CARD,
        status=Payment.Status.PENDING, currency=bill.currency, amount=_owed(charge, bill),
        payer_email=charge.account.email, payment_method_summary=card.short_summary[:64], idempotency_key=key,
        mandate=BankMandate.objects.filter(payment_method=card).first() if card.is_bank_account else None,
    )  # fmt: skip
    event_record(
        kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=payment, to_status=payment.status, amount=payment.amount,
        currency=payment.currency, message=f"autopay charge {charge.pk}, attempt {charge.attempt_number}, {role} card",
    )  # fmt: skip
    if role == Role.BACKUP:
        charge.backup_tried = True
    charge.last_method_role, charge.amount = role, payment.amount
    charge.save(update_fields=["backup_tried", "last_method_role", "amount", "updated_at"])
    return AutopayChargeTry.objects.create(
        charge=charge, attempt_number=charge.attempt_number, method_role=role, payment_method=card, payment=payment
    )


def _try_run(charge_id: int, try_id: int, *, resuming: bool) -> str:
    """Steps 2 and 3 for one try: make sure an intent exists (stored before it is confirmed), then confirm and record
    under the locks. A resumed try asks the gateway where its intent stands first."""
    gateway = gateway_api.get_gateway()
    attempt = AutopayChargeTry.objects.select_related("payment", "payment_method").get(pk=try_id)
    payment = attempt.payment
    if not payment.gateway_payment_id:
        from billing.payments.attempts import payment_gateway_call

        card = attempt.payment_method
        try:
            intent = payment_gateway_call(
                payment=payment, kind=PaymentAttempt.Kind.CREATE, amount=payment.amount, reference="-",
                idempotency_key=payment.idempotency_key,
                call=lambda k: gateway.create_payment_intent(
                    amount=payment.amount, currency=payment.currency, idempotency_key=k,
                    customer=card.gateway_customer_id, payment_method=card.gateway_payment_method_id,
                    metadata={"payment": str(payment.pk), "autopay_charge": str(charge_id),
                              "account": str(payment.account_id)},
                    payment_method_types=[card.kind] if card.is_bank_account else None,
                    mandate=payment.mandate.gateway_mandate_id if payment.mandate_id else None,
                ),
            )  # fmt: skip
        except GatewayError:
            # Nothing was confirmed. The row stays charging; a reclaim after the timeout resumes this try.
            logger.warning("autopay charge %s: intent not created, will resume", charge_id, exc_info=True)
            return "gateway_error"
        Payment.objects.filter(pk=payment.pk).update(gateway_payment_id=intent.id, updated_at=timezone.now())
        resuming = False
    payment.refresh_from_db()
    payment_confirm_attempt_open(payment)
    with transaction.atomic():
        charge, bill = _lock(charge_id)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        attempt = AutopayChargeTry.objects.select_for_update().get(pk=try_id)
        if charge.status != Status.CHARGING or attempt.outcome != AutopayChargeTry.Outcome.PENDING:
            return charge.status
        return _confirm_and_record(charge=charge, bill=bill, payment=payment, attempt=attempt, resuming=resuming)


def _confirm_and_record(*, charge, bill, payment, attempt, resuming: bool) -> str:
    from billing.payments.attempts import intent_outcome, payment_intent_retrieve, payment_status_move
    from billing.payments.core import payment_sync

    intent: IntentResult | None = None
    if resuming or payment.status != Payment.Status.PENDING:
        try:
            intent = payment_intent_retrieve(payment, source="autopay")
        except GatewayError:
            return "gateway_error"
        lost = PaymentAttempt.objects.filter(
            payment=payment, kind=PaymentAttempt.Kind.CONFIRM, outcome=PaymentAttempt.Outcome.PENDING
        )
        if intent.status != IntentStatus.REQUIRES_CONFIRMATION:
            # The confirm reached the gateway but its worker died before recording: complete its row from the intent.
            lost.update(
                outcome=intent_outcome(intent),
                message="outcome read back from the gateway after a lost worker",
                decline_code=(intent.decline_code or intent.error_code or "")[:64],
            )
        payment_sync(payment=payment, intent=intent, source="autopay")
    if payment.status == Payment.Status.PENDING and (
        intent is None or intent.status in (IntentStatus.REQUIRES_CONFIRMATION, IntentStatus.REQUIRES_PAYMENT_METHOD)
    ):
        stop = _stop_reason(charge, bill)
        if stop or _owed(charge, bill) < payment.amount:
            return _try_abandon(charge=charge, payment=payment, attempt=attempt, stop=stop, bill=bill)
        try:
            intent = payment_confirm_off_session(payment)
        except PaymentDeclined as declined:
            if payment.status in Payment.IN_FLIGHT_STATUSES:
                payment_status_move(
                    payment=payment, to=Payment.Status.FAILED, message=f"autopay declined: {declined.code}"
                )
            return charge_declined(charge, bill, attempt, code=declined.code, decline_code=declined.decline_code)
        except GatewayError:
            # Did it charge? Unknown: the row stays charging, and the resumed run asks the gateway.
            logger.warning("autopay charge %s: confirm failed, will resume", charge.pk, exc_info=True)
            return "gateway_error"
        payment_sync(payment=payment, intent=intent, source="autopay")
    return _after_sync(charge=charge, bill=bill, payment=payment, attempt=attempt, intent=intent)


def _after_sync(*, charge, bill, payment, attempt, intent: IntentResult | None) -> str:
    from billing.payments.attempts import payment_intent_cancel, payment_status_move

    if payment.status == Payment.Status.SUCCEEDED:
        attempt.outcome = AutopayChargeTry.Outcome.SUCCEEDED
        attempt.save(update_fields=["outcome"])
        charge_status_move(charge, Status.SUCCEEDED, payment=payment, next_attempt_at=None, reason="",
                           message=f"paid by {payment.confirmation_number} ({attempt.method_role} card)")  # fmt: skip
        return charge.status
    if payment.status == Payment.Status.REQUIRES_ACTION:
        # Off-session, the bank wants the payer: cancel this intent (it can never complete behind their back) and
        # ask them to pay on-session with the pay link.
        try:
            payment_intent_cancel(payment=payment, amount=payment.amount)
        except GatewayError:
            return "gateway_error"
        payment_status_move(payment=payment, to=Payment.Status.CANCELED, message="autopay: authentication required")
        return charge_declined(charge, bill, attempt, code="authentication_required", decline_code=None)
    if payment.status == Payment.Status.FAILED:
        code = (intent.error_code if intent else None) or "card_declined"
        return charge_declined(charge, bill, attempt, code=code, decline_code=intent.decline_code if intent else None)
    if payment.status == Payment.Status.CANCELED:
        return charge_declined(charge, bill, attempt, code="processing_error", decline_code=None)
    if payment.is_bank_debit and payment.status == Payment.Status.PROCESSING:
        # A bank debit counts as paid while it processes (docs/payments.md); a return reopens this row (dunning).
        attempt.outcome = AutopayChargeTry.Outcome.SUCCEEDED
        attempt.save(update_fields=["outcome"])
        charge_status_move(charge, Status.SUCCEEDED, payment=payment, next_attempt_at=None, reason="",
                           message=f"debited by {payment.confirmation_number}, processing at the bank")  # fmt: skip
        return charge.status
    return charge.status  # processing: money is moving; the row stays charging and is resumed later


def _try_abandon(*, charge, bill, payment, attempt, stop: str) -> str:
    """The bill was paid (or changed) between step 1 and the confirm: cancel the unconfirmed intent, charge nothing."""
    from billing.payments.attempts import payment_intent_cancel, payment_status_move

    try:
        payment_intent_cancel(payment=payment, amount=payment.amount)
    except GatewayError:
        pass  # never confirmed, so never charged; the janitor may cancel it later
    PaymentAttempt.objects.filter(
        payment=payment, kind=PaymentAttempt.Kind.CONFIRM, outcome=PaymentAttempt.Outcome.PENDING
    ).update(outcome=PaymentAttempt.Outcome.CANCELED, message="not sent: the bill changed before the charge")
    payment_status_move(
        payment=payment, to=Payment.Status.CANCELED, message=f"autopay: not charged ({stop or 'amount'})"
    )
    attempt.outcome = AutopayChargeTry.Outcome.CANCELLED
    attempt.save(update_fields=["outcome"])
    if stop:
        charge_status_move(charge, Status.CANCELLED, reason=stop, next_attempt_at=None, message=stop)
        return charge.status
    # Partly paid another way: this attempt is void; a fresh attempt for the new balance starts at once.
    charge_status_move(charge, Status.RETRY_SCHEDULED, next_attempt_at=timezone.now(), message="balance changed")
    return charge.status

