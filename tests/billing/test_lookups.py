"""`__any_of` (billing/lookups.py) selects what `__in` selects, on both databases: ids, foreign-key ids, text keys,
repeated values and None among them, and nothing for an empty list."""

import pytest

from billing.models import Bill, CustomerAccount
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill


@pytest.mark.django_db
def test_any_of_selects_what_in_selects():
    biller = BillerFactory()
    accounts = [CustomerAccountFactory(biller=biller) for _ in range(6)]
    bills = [make_bill(account) for account in accounts[:4]]
    ids = [accounts[0].pk, accounts[2].pk, accounts[2].pk, None, accounts[5].pk, 10**9]
    cases = [
        (CustomerAccount.objects, "pk", ids),
        (CustomerAccount.objects, "pk", {a.pk for a in accounts[1:3]}),
        (CustomerAccount.objects, "account_number", [accounts[1].account_number, "?", accounts[4].account_number]),
        (Bill.objects, "account_id", [a.pk for a in accounts[1:]]),
        (Bill.objects, "pk", [bills[3].pk]),
        (CustomerAccount.objects, "pk", []),
    ]
    for manager, field, values in cases:
        expected = set(manager.filter(**{f"{field}__in": values}).values_list("pk", flat=True))
        got = set(manager.filter(**{f"{field}__any_of": values}).values_list("pk", flat=True))
        assert got == expected, (field, values)
    paid_by = Bill.objects.filter(account_id__any_of=[accounts[1].pk, accounts[3].pk])
    assert set(paid_by.values_list("pk", flat=True)) == {bills[1].pk, bills[3].pk}
