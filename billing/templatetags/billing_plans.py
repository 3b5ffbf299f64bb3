""""Pay over time" on the pay screen: a link to set up a payment plan where the biller lets payers set one up and the
account has none yet (the plan page itself checks every rule)."""

from django import template

register = template.Library()


@register.inclusion_tag("billing/pay_over_time.html")
def pay_over_time(account) -> dict:
    from billing.plans.selectors import plan_current, plans_offered

    offered = account is not None and account.biller_id in plans_offered(billers=[account.biller_id])
    return {"account": account, "offered": offered and plan_current(account_id=account.pk) is None}
