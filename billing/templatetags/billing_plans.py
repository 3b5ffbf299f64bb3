""""Pay over time" on the pay screen: a link to set up a payment plan where the biller lets payers set one up and the
account has none yet (the plan page itself checks every rule)."""

from django import template

register = template.Library()


@register.inclusion_tag("billing/pay_over_time.html")
def pay_over_time(account) -> dict:
    from billing.plans.selectors import plan_current, plan_rules_for

    rules = plan_rules_for(account.biller) if account is not None else None  # read with the account by the view
    offered = rules is not None and rules.enabled and rules.self_service
    return {"account": account, "offered": offered and plan_current(account_id=account.pk) is None}


@register.inclusion_tag("billing/bill_plan_note.html")
def bill_plan_note(bill) -> dict:
    """The e-bill's note when the bill is on a payment plan that is running: what the plan has been paid and what
    is due next, instead of the whole balance by the due date."""
    from billing.models import PaymentPlan
    from billing.plans.selectors import plan_view

    plan = (
        PaymentPlan.objects.filter(plan_bills__bill_id=getattr(bill, "pk", None), status=PaymentPlan.Status.ACTIVE)
        .order_by("-pk")
        .first()
    )
    return {"plan": plan_view(plan) if plan else None}
