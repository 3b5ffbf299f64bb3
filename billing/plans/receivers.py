"""Plans' receivers on billing.signals, connected in BillingConfig.ready()."""

from __future__ import annotations

from .services import plan_notice_context, plans_progress_for_bills


def plans_progress_on_bill_paid(sender, *, bills, **kwargs) -> int:
    """bill_paid (sent with every payment applied, paid in full or not): bring the plans covering these bills up to
    date, so money arriving any way counts toward the next instalments. Under the sender's bill locks."""
    return plans_progress_for_bills(bills=bills)


PLAN_NOTICE_KINDS = frozenset({"plan_proposed", "plan_active", "plan_instalment_due", "plan_broken"})


def plans_notice_context_give(sender, *, notification, **kwargs) -> dict:
    """notice_context_wanted (asked by notifications.render): the plan's facts for a plan notice; for staff's
    proposal, its accept link takes the pay link's place."""
    if notification.kind not in PLAN_NOTICE_KINDS or not notification.plan_id:
        return {}
    return plan_notice_context(notification.plan, proposal=notification.kind == "plan_proposed")
