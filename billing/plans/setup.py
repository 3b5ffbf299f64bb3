"""The payer sets up a plan: choose a schedule, agree (kept like a mandate), and pay the down payment now with a saved
card through the payment core (payment_start → payment_confirm → payment_record_result, as the pay screen does),
or on the pay screen by hand. The plan becomes active when its down payment reaches the bills (`plan_progress`, on
`bill_paid`), however it was paid."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext as _

from ..errors import ApplicationError
from ..models import Payment, PaymentMethod, PaymentPlan
from ..money import format_money
from ..payments.core import payment_record_result
from ..payments.gateway import GatewayError
from ..payments.online import payment_confirm, payment_start
from .selectors import instalment_owed
from .services import plan_agree, plan_agreement_text, plan_create


@dataclass(frozen=True)
class SetupOutcome:
    """`down_payment`: "none" (active already), "paid", "by_hand" (the payer pays it on the pay screen),
    "retry" (declined, bank check or a gateway problem: `message` says so; the pay screen can finish it)."""

    plan: PaymentPlan
    down_payment: str
    message: str = ""


def plan_setup_by_payer(
    *, account, user, schedule_key: str, payment_method: PaymentMethod | None, pays_by_hand: bool, ip: str | None
) -> SetupOutcome:
    """Make the plan and record the payer's agreement in one transaction (nothing half-saved), then take the down
    payment."""
    with transaction.atomic():
        plan = plan_create(account=account, schedule_key=schedule_key, origin=PaymentPlan.Origin.PAYER, actor=user)
        plan = plan_agree(plan=plan, user=user, ip=ip, agreement_text=plan_agreement_text(plan=plan),
                          payment_method=payment_method, pays_by_hand=pays_by_hand)  # fmt: skip
    return plan_down_payment_take(plan=plan, user=user)


def plan_down_payment_take(*, plan: PaymentPlan, user) -> SetupOutcome:
    """Charge what the down payment still owes with the plan's saved method, on-session (the payer is on the page)."""
    plan.refresh_from_db()
    if plan.status != PaymentPlan.Status.PROPOSED:
        return SetupOutcome(plan, "none")
    down = plan.instalments.filter(number=0).first()
    owed = instalment_owed(plan=plan, instalment=down) if down else 0
    if plan.payment_method is None or owed <= 0:
        return SetupOutcome(plan, "by_hand")
    method = plan.payment_method
    try:
        payment, _secret = payment_start(account=plan.account, payer_email=user.email,
                                         channel=Payment.Channel.PORTAL, amount=owed)  # fmt: skip
        outcome = payment_confirm(
            account_id=plan.account_id, payment_intent_id=payment.gateway_payment_id,
            payment_method_id=method.gateway_payment_method_id, customer_id=method.gateway_customer_id,
        )  # fmt: skip
        if outcome.status in ("succeeded", "processing"):
            payment_record_result(payment_intent_id=payment.gateway_payment_id, source="return")
    except (ApplicationError, GatewayError) as error:
        message = getattr(error, "message", "") or _("The payment service is unavailable right now.")
        return SetupOutcome(plan, "retry", message)
    plan.refresh_from_db()
    if plan.status == PaymentPlan.Status.ACTIVE:
        return SetupOutcome(plan, "paid")
    if outcome.status == "requires_action":
        message = _("Your bank wants to confirm it's you. Please pay the down payment of %(amount)s here.")
    elif outcome.status == "declined":
        message = outcome.payer_message + " " + _("Please pay the down payment of %(amount)s here.")
    else:
        message = _("Please pay the down payment of %(amount)s here.")
    return SetupOutcome(plan, "retry", message % {"amount": format_money(owed, plan.currency)})
