"""The e-bill notes a running payment plan: what the plan was paid and the next instalment."""

import pytest

from billing.bills.documents import bill_document_get, bill_document_html
from billing.models import PlanRules
from tests.billing.cards_support import linked, make_user

from .plans_support import agreed_plan, owing, rules_on

pytestmark = pytest.mark.django_db


def test_the_bill_on_a_running_plan_says_so(account, django_user_model):
    rules_on(account.biller, down_payment=PlanRules.DownPayment.NONE)
    covered = owing(account, 30_000)
    payer = make_user(django_user_model)
    linked(payer, account)
    agreed_plan(account, payer)
    later = owing(account, 5_000, due_in_days=20)  # issued during the plan: billed as usual
    html = bill_document_html(document=bill_document_get(bill=covered))
    assert 'data-testid="bill-plan-note"' in html
    assert "part of your payment plan for $300.00" in html and "Next instalment: $100.00" in html
    assert 'data-testid="bill-plan-note"' not in bill_document_html(document=bill_document_get(bill=later))
