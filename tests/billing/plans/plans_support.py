"""Helpers for plan tests: a biller with plans on, an account that owes, and a plan the payer agreed to."""

import datetime as dt

from billing.models import PlanRules
from billing.plans.services import plan_agree, plan_agreement_text, plan_create
from tests.factories import make_bill


def rules_on(biller, **changes) -> PlanRules:
    values = dict(
        enabled=True, min_balance=10_000, max_balance=1_000_000, min_days_overdue=0, min_instalments=2,
        max_instalments=6, allow_monthly=True, allow_biweekly=True, allow_weekly=False, min_instalment=1_000,
        down_payment=PlanRules.DownPayment.PERCENT, down_payment_percent=10, grace_days=5,
    )  # fmt: skip
    rules, _created = PlanRules.objects.update_or_create(biller=biller, defaults=values | changes)
    return rules


def owing(account, amount=30_000, *, due_in_days=-10):
    return make_bill(account, amounts=(amount,), due_in_days=due_in_days, today=dt.date.today())


def agreed_plan(account, user, *, key="monthly-3", method=None, origin="payer"):
    plan = plan_create(account=account, schedule_key=key, origin=origin)
    return plan_agree(plan=plan, user=user, ip="198.51.100.7", agreement_text=plan_agreement_text(plan=plan),
                      payment_method=method, pays_by_hand=method is None)  # fmt: skip
